"""Wire-level tests of the board wire format: exact bytes of frames and payloads, decoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from drivers.board import framing as fr
from drivers.board import messages as bp


def test_crc_is_crc16_ccitt_false() -> None:
    # the catalogued check value of CRC-16/CCITT-FALSE over "123456789"
    assert fr.crc16(b"123456789") == 0x29B1


def test_identify_frame_exact_bytes() -> None:
    frame = fr.encode_frame(bp.Command.IDENTIFY, 1)
    # sync, LEN=0 (u32 LE), CMD=0x01, SEQ=1 (u16 LE), CRC over the 8 bytes before it (LE)
    assert frame == bytes.fromhex("a50000000001010068fb")
    head = frame[:-2]
    assert struct.unpack("<H", frame[-2:])[0] == fr.crc16(head)


def test_pulse_request_exact_payload() -> None:
    req = bp.PulseRequest(
        array=0,
        amplitude_uV=bp.volts_to_uV(2.0),
        width_ns=bp.seconds_to_ns(100e-6),
        compliance_A=1e-3,
        count=50,
        read_after=True,
        read_uV=bp.volts_to_uV(0.5),
        cells=np.array([[3, 4]]),
    )
    expected = bytes.fromhex(
        "00"  # array 0
        "01"  # flags: read after every pulse
        "80841e00"  # 2 000 000 uV
        "a086010000000000"  # 100 000 ns
        "6f12833a"  # 1e-3 A as float32
        "32000000"  # 50 pulses
        "20a10700"  # 500 000 uV
        "01000000"  # one cell
        "03000400"  # row 3, col 4
    )
    assert req.encode() == expected
    frame = fr.encode_frame(bp.Command.PULSE, 0x1234, expected)
    assert frame[:8] == bytes.fromhex("a522000000033412")
    decoded = bp.decode_request(fr.FrameDecoder().feed(frame)[0])
    assert isinstance(decoded, bp.PulseRequest)
    assert (decoded.array, decoded.amplitude_uV, decoded.width_ns, decoded.count) == (
        0,
        2_000_000,
        100_000,
        50,
    )
    assert decoded.read_after and decoded.read_uV == 500_000
    assert decoded.cells is not None and decoded.cells.tolist() == [[3, 4]]
    assert decoded.compliance_A == pytest.approx(1e-3, rel=1e-7)


def test_all_cells_pulse_has_no_cell_list() -> None:
    req = bp.PulseRequest(1, -4_000_000, 100_000, 1e-2, 5)
    payload = req.encode()
    assert payload[1] == bp.PULSE_ALL_CELLS and payload[-4:] == b"\x00\x00\x00\x00"
    back = bp.PulseRequest.decode(payload)
    assert back.cells is None and not back.read_after and back.amplitude_uV == -4_000_000


def test_set_limits_exact_payload() -> None:
    req = bp.SetLimitsRequest(5_000_000, 1_000_000, 0.5, 1, 10_000_000, 10_000, 1_000_000_000)
    assert req.encode() == bytes.fromhex(
        "404b4c0040420f000000003f010000000000000080969800000000001027000000ca9a3b00000000"
    )
    assert bp.SetLimitsRequest.decode(req.encode()) == req


def test_program_request_round_trip_and_layout() -> None:
    counts = np.array([[0, 1, 2], [65535, 4, 5]])
    req = bp.ProgramRequest(2, 7, 2_000_000, 100_000, 1e-3, 4, counts, last=True)
    payload = req.encode()
    head = struct.calcsize("<" + bp.ProgramRequest.FMT)
    assert len(payload) == head + 2 * counts.size
    assert payload[head:] == bytes.fromhex("000001000200ffff04000500")
    back = bp.ProgramRequest.decode(payload)
    assert (back.array, back.batch, back.row_start, back.last) == (2, 7, 4, True)
    np.testing.assert_array_equal(back.counts, counts)
    with pytest.raises(ValueError, match="counts"):
        bp.ProgramRequest(0, 0, 0, 1, 1e-3, 0, np.array([[65536]]), True).encode()


def test_vmm_request_keeps_vector_or_batch() -> None:
    vec = bp.VmmRequest(bp.VMM_FORWARD, (0, 1), (1.0, -1.0), np.array([100_000, -200_000, 0]))
    back = bp.VmmRequest.decode(vec.encode())
    assert back.ndim == 1 and back.voltages_uV.tolist() == [100_000, -200_000, 0]
    assert back.arrays == (0, 1) and back.signs == (1.0, -1.0)
    batch = bp.VmmRequest(bp.VMM_BACKWARD, (3,), (1.0,), np.arange(6).reshape(2, 3))
    back = bp.VmmRequest.decode(batch.encode())
    assert back.ndim == 2 and back.direction == bp.VMM_BACKWARD
    np.testing.assert_array_equal(back.voltages_uV, np.arange(6).reshape(2, 3))


def test_replies_round_trip() -> None:
    ident = bp.IdentifyReply(123, bp.WIRE_FORMAT_VERSION, 65536, ((32, 32), (8, 16)), "board")
    assert bp.IdentifyReply.decode(ident.encode()) == ident
    currents = np.array([[1e-6, 2e-6, 3e-6]], dtype=np.float32)
    pr = bp.PulseReply(5, 3, 1, 10, 30, np.array([10, 20, 30], dtype=np.uint64), currents)
    back = bp.PulseReply.decode(pr.encode())
    assert back.read_times_ns is not None and back.read_times_ns.tolist() == [10, 20, 30]
    assert back.currents_A is not None and back.currents_A.tolist() == currents.tolist()
    assert len(pr.encode()) == bp.PulseReply.size(3, 1, True)
    no_reads = bp.PulseReply.decode(bp.PulseReply(5, 3, 1, 10, 30).encode())
    assert no_reads.currents_A is None and (no_reads.t_first_ns, no_reads.t_last_ns) == (10, 30)
    prog = bp.ProgramReply(9, True, 32, 100, 10, 12, 1_200_000)
    assert bp.ProgramReply.decode(prog.encode()) == prog
    rr = bp.ReadReply.decode(bp.ReadReply(1, 2, np.ones((2, 3), dtype=np.float32)).encode())
    assert rr.currents_A.shape == (2, 3) and rr.read_t_ns == 2
    iv = bp.IvSweepReply(
        1, np.array([0.5]), np.array([1e-6]), np.array([7], dtype=np.uint64), np.array([True])
    )
    back_iv = bp.IvSweepReply.decode(iv.encode())
    assert back_iv.in_compliance.tolist() == [True] and back_iv.times_ns.tolist() == [7]


def test_error_frame_layout_and_decoding() -> None:
    frame = bp.error_frame(9, bp.Command.PULSE, bp.ErrorCode.LIMIT, "too high")
    assert frame[:8] == bytes.fromhex("a50a000000ff0900")
    assert frame[8:-2] == b"\x05\x03too high"
    decoded = bp.decode_reply(fr.FrameDecoder().feed(frame)[0], bp.Command.PULSE)
    assert isinstance(decoded, bp.ErrorReply)
    assert (decoded.code_name, decoded.failed_cmd, decoded.message) == ("LIMIT", 3, "too high")


def test_reply_to_another_command_is_rejected() -> None:
    frame = fr.Frame(bp.Command.READ_ARRAY | fr.REPLY_FLAG, 1, bp.EmptyReply(0).encode())
    with pytest.raises(bp.PayloadError, match="does not answer"):
        bp.decode_reply(frame, bp.Command.PULSE)


def test_units_are_exact_for_round_values() -> None:
    assert bp.volts_to_uV(-4.0) == -4_000_000 and bp.uV_to_volts(-4_000_000) == -4.0
    assert bp.seconds_to_ns(100e-6) == 100_000 and bp.ns_to_seconds(100_000) == 100e-6
    assert bp.uV_to_volts(bp.volts_to_uV(0.5)) == 0.5
    assert fr.next_seq(65535) == 0


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00", "too short"),
        (bp.PulseRequest(0, 1, 1, 1e-3, 1, cells=np.array([[0, 0]])).encode() + b"\x00", "trailing"),
        (b"\x00\x04" + bytes(28), "unknown flag"),
        (b"\x00\x00" + bytes(28), "no cells"),
    ],
)
def test_malformed_pulse_payloads_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(bp.PayloadError, match=match):
        bp.PulseRequest.decode(payload)


def test_unknown_command_has_its_own_code() -> None:
    with pytest.raises(bp.PayloadError) as info:
        bp.decode_request(fr.Frame(0x42, 0, b""))
    assert info.value.code == bp.ErrorCode.UNKNOWN_COMMAND


def test_set_limits_refuses_inconsistent_limits() -> None:
    bad = bp.SetLimitsRequest(1_000_000, 2_000_000, 1e-3, 1, 10, 1, 1).encode()
    with pytest.raises(bp.PayloadError, match="inconsistent"):
        bp.SetLimitsRequest.decode(bad)


# --------------------------------------------------------------------------- stream decoder
def _frames(*seqs: int) -> list[bytes]:
    return [fr.encode_frame(bp.Command.SAFE_STATE, s, b"") for s in seqs]


def test_decoder_assembles_frames_fed_byte_by_byte() -> None:
    a, b = _frames(1, 2)
    dec = fr.FrameDecoder()
    got = []
    for byte in a + b:
        assert dec.needed() >= 1
        got += dec.feed(bytes([byte]))
    assert [f.seq for f in got] == [1, 2]
    assert dec.buffered == 0


def test_decoder_skips_garbage_and_bad_crc_without_losing_the_next_frame() -> None:
    good, nxt = _frames(5, 6)
    corrupted = bytearray(good)
    corrupted[-1] ^= 0x01
    dec = fr.FrameDecoder()
    got = dec.feed(b"\x00\x13garbage" + bytes(corrupted) + nxt)
    assert [f.seq for f in got] == [6]
    assert dec.crc_errors == 1
    assert dec.discarded_bytes >= 9


def test_decoder_finds_a_frame_behind_a_truncated_one() -> None:
    # a frame cut short is followed by a whole one: the cut frame's length swallows the next
    # frame's bytes, its CRC fails, and decoding resumes right after its sync byte
    cut = fr.encode_frame(bp.Command.PULSE, 1, bytes(40))[:20]
    whole = _frames(2)[0]
    dec = fr.FrameDecoder()
    got = dec.feed(cut + whole + bytes(40))
    assert [f.seq for f in got] == [2]


def test_decoder_rejects_oversize_length_at_once() -> None:
    dec = fr.FrameDecoder(max_payload=16)
    big = fr.encode_frame(bp.Command.PULSE, 1, bytes(32))
    assert dec.feed(big) == []
    assert dec.length_errors == 1
    assert dec.feed(_frames(3)[0])[0].seq == 3


def test_decoder_drop_partial_resyncs_after_a_stalled_frame() -> None:
    stalled = fr.encode_frame(bp.Command.PULSE, 1, bytes(100))[:30]
    dec = fr.FrameDecoder()
    assert dec.feed(stalled + _frames(4)[0]) == []  # waiting for the stalled frame's 100 bytes
    got = dec.drop_partial()
    assert [f.seq for f in got] == [4]
