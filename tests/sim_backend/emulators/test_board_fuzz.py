"""Bad bytes: the board wire-format parser and the emulated firmware fuzzed with random and mutated
frames. Nothing crashes, every reply is a well-formed frame, and no mis-framed or malformed
command is ever carried out."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from drivers.board import framing as fr
from drivers.board import messages as bp
from hil.types import ArraySpec
from sim_backend.emulators.board import BoardFirmware
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SPECS = [ArraySpec("A", 4, 6, 7.853981633974483e-13), ArraySpec("B", 3, 3, 7.853981633974483e-13)]
PRESET = load_preset("mo_tiox_choi2021")
LIMITS = bp.SetLimitsRequest(5_000_000, 1_000_000, 1e-2, 1, 10_000_000, 1000, 1_000_000_000)


def fresh_board() -> BoardFirmware:
    fw = BoardFirmware(TwinBackend(SPECS, PRESET, seed=1))
    fw.handle(fr.Frame(bp.Command.IDENTIFY, 60_000, b""))
    fw.handle(fr.Frame(bp.Command.SET_LIMITS, 60_001, LIMITS.encode()))
    return fw


def snapshot(fw: BoardFirmware) -> tuple[object, ...]:
    twin = fw.twin
    models = tuple(twin.model(s.name).x.tobytes() for s in SPECS)
    return (*models, twin.now(), fw.applied, fw.outputs_on, fw.limits, fw._batch is None)


def serve(fw: BoardFirmware, data: bytes) -> tuple[list[fr.Frame], list[fr.Frame]]:
    """Feed bytes to a fresh decoder and the firmware, flushing stalled frames as the board's
    inter-byte timeout would. Returns (frames accepted, reply frames)."""
    decoder = fr.FrameDecoder(fw.rx_max_payload)
    accepted = decoder.feed(data)
    while decoder.buffered:
        accepted += decoder.drop_partial()
    replies = []
    for frame in accepted:
        raw = fw.handle(frame)
        got = fr.FrameDecoder().feed(raw)
        assert len(got) == 1 and got[0].seq == frame.seq
        assert got[0].cmd in (fr.ERROR_CMD, frame.cmd | fr.REPLY_FLAG)
        if got[0].cmd == fr.ERROR_CMD:
            err = bp.ErrorReply.decode(got[0].payload)
            assert err.code in {c.value for c in bp.ErrorCode}
        else:
            bp.decode_reply(got[0], frame.cmd)  # decodes: the reply is well formed
        replies.append(got[0])
    return accepted, replies


cells_st = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 7)), min_size=1, max_size=6).map(
    lambda c: np.array(c, dtype=np.int64)
)
volts_st = st.integers(-6_000_000, 6_000_000)


@st.composite
def genuine_requests(draw: st.DrawFn) -> bp.Message:
    """Well-formed requests, inside and outside the board's limits and arrays."""
    kind = draw(st.sampled_from(["pulse", "program", "read", "read_array", "vmm", "iv", "safe", "delay"]))
    array = draw(st.integers(0, 2))
    if kind == "pulse":
        read = draw(st.booleans())
        cells = draw(st.none() | cells_st)
        return bp.PulseRequest(
            array, draw(volts_st), draw(st.integers(1, 20_000_000)), draw(st.sampled_from([1e-3, 0.5])),
            draw(st.integers(1, 30)), read, draw(st.integers(-2_000_000, 2_000_000)) if read else 0, cells,
        )  # fmt: skip
    if kind == "program":
        counts = np.array(draw(st.lists(st.integers(0, 1200), min_size=6, max_size=6))).reshape(1, 6)
        return bp.ProgramRequest(
            array, 1, draw(volts_st), 100_000, 1e-3, 0, np.repeat(counts, 4, axis=0), True
        )
    if kind == "read":
        return bp.ReadCellsRequest(array, draw(st.integers(-2_000_000, 2_000_000)), draw(cells_st))
    if kind == "read_array":
        return bp.ReadArrayRequest(array, draw(st.integers(-2_000_000, 2_000_000)))
    if kind == "vmm":
        n = draw(st.sampled_from([3, 4, 6]))
        v = np.array(draw(st.lists(st.integers(-1_200_000, 1_200_000), min_size=n, max_size=n)))
        return bp.VmmRequest(draw(st.integers(0, 1)), (array,), (1.0,), v)
    if kind == "iv":
        v = np.array(draw(st.lists(volts_st, min_size=1, max_size=4)))
        return bp.IvSweepRequest(array, draw(st.integers(0, 5)), draw(st.integers(0, 6)), 1e-4, 1_000_000, v)
    if kind == "delay":
        return bp.DelayRequest(draw(st.integers(0, 10**12)))
    return bp.SafeStateRequest()


def genuine_frame(request: bp.Message, seq: int) -> bytes:
    return fr.encode_frame(int(request.command), seq, request.encode())


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_crash_and_are_never_carried_out(data: bytes) -> None:
    fw = fresh_board()
    before = snapshot(fw)
    accepted, _ = serve(fw, data)
    for frame in accepted:  # only frames whose every byte is in the input and whose CRC holds
        assert frame.encode() in data
    if not accepted:
        assert snapshot(fw) == before


@FUZZ
@given(genuine_requests(), st.integers(0, 65535), st.data())
def test_burst_errors_are_never_carried_out(request: bp.Message, seq: int, data: st.DataObject) -> None:
    frame = genuine_frame(request, seq)
    bits = len(frame) * 8
    start = data.draw(st.integers(0, bits - 16), label="burst start bit")
    pattern = data.draw(st.integers(1, 0xFFFF), label="burst pattern")
    mutated = int.from_bytes(frame, "big") ^ (pattern << (bits - 16 - start))
    fw = fresh_board()
    before = snapshot(fw)
    accepted, replies = serve(fw, mutated.to_bytes(len(frame), "big"))
    # CRC-16 catches every burst of up to 16 bits: nothing is carried out, nothing answered
    assert accepted == [] and replies == []
    assert snapshot(fw) == before


@FUZZ
@given(genuine_requests(), st.data())
def test_truncated_frames_are_never_carried_out(request: bp.Message, data: st.DataObject) -> None:
    frame = genuine_frame(request, 5)
    cut = data.draw(st.integers(0, len(frame) - 1), label="bytes kept")
    fw = fresh_board()
    before = snapshot(fw)
    accepted, _ = serve(fw, frame[:cut])
    assert accepted == [] and snapshot(fw) == before


@FUZZ
@given(genuine_requests(), st.data())
def test_inserted_or_deleted_bytes_never_crash(request: bp.Message, data: st.DataObject) -> None:
    frame = bytearray(genuine_frame(request, 9))
    at = data.draw(st.integers(0, len(frame) - 1), label="position")
    if data.draw(st.booleans(), label="insert"):
        frame.insert(at, data.draw(st.integers(0, 255), label="byte"))
    else:
        del frame[at]
    fw = fresh_board()
    accepted, _ = serve(fw, bytes(frame))
    for got in accepted:
        assert got.encode() in bytes(frame)


@FUZZ
@given(genuine_requests(), st.data())
def test_crc_valid_frames_with_mutated_payloads_are_applied_exactly_or_refused(
    request: bp.Message, data: st.DataObject
) -> None:
    """Frames that pass the CRC but carry a damaged command: either refused with an error
    frame, with nothing changed, or decoded to a command whose encoding is exactly those bytes."""
    payload = bytearray(request.encode())
    cmd = int(request.command)
    choice = data.draw(st.sampled_from(["flip", "truncate", "extend", "command"]), label="mutation")
    if choice == "flip" and payload:
        at = data.draw(st.integers(0, len(payload) - 1), label="byte")
        payload[at] ^= data.draw(st.integers(1, 255), label="xor")
    elif choice == "truncate" and payload:
        del payload[data.draw(st.integers(0, len(payload) - 1), label="cut") :]
    elif choice == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=8), label="tail")
    else:
        cmd = data.draw(st.integers(0, 255), label="cmd")
    fw = fresh_board()
    before = snapshot(fw)
    accepted, replies = serve(fw, fr.encode_frame(cmd, 77, bytes(payload)))
    assert len(accepted) == 1 and len(replies) == 1
    if replies[0].cmd == fr.ERROR_CMD:
        event(f"refused: {bp.ErrorReply.decode(replies[0].payload).code_name}")
        assert snapshot(fw) == before
    else:
        event("carried out")
        decoded = bp.decode_request(accepted[0])
        assert decoded.encode() == bytes(payload)


@FUZZ
@given(st.lists(genuine_requests(), min_size=1, max_size=5), st.binary(max_size=40))
def test_genuine_frames_behind_garbage_are_all_found(requests: list[bp.Message], junk: bytes) -> None:
    frames = [genuine_frame(r, i) for i, r in enumerate(requests)]
    junk = junk.replace(bytes([fr.SYNC]), b"\x00")  # garbage without a sync byte
    fw = fresh_board()
    accepted, replies = serve(fw, junk + b"".join(frames))
    assert [f.seq for f in accepted] == list(range(len(requests)))
    assert len(replies) == len(requests)
