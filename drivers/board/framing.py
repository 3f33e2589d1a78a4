"""Byte framing of the FPGA crossbar board's serial wire format: frames, CRC-16, stream decoding.

Pure functions and dataclasses, no I/O, and nothing of what a payload means (that is
:mod:`drivers.board.messages`). The client (:mod:`drivers.board.client`) and the board emulator
both frame their bytes with this module; ``docs/board-wire-format.md`` is the specification.

Frame layout (all multi-byte numbers little-endian)::

    offset  size  field
    0       1     SYNC = 0xA5
    1       4     LEN: payload length in bytes (u32, at most MAX_PAYLOAD)
    5       1     CMD: command code (host -> board), CMD | 0x80 (reply) or 0xFF (error)
    6       2     SEQ: sequence number (u16), echoed by the reply
    8       LEN   PAYLOAD
    8+LEN   2     CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over bytes 0 .. 8+LEN-1
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

SYNC = 0xA5
#: header: SYNC u8, LEN u32, CMD u8, SEQ u16
HEADER = struct.Struct("<BIBH")
HEADER_SIZE = HEADER.size  # 8
CRC_SIZE = 2
#: bytes of a frame around its payload (header and CRC)
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE
#: largest payload any frame may declare (1 MiB); a header declaring more is a framing error.
MAX_PAYLOAD = 1 << 20
#: bit set in the command code of a reply
REPLY_FLAG = 0x80
#: command code of an error frame
ERROR_CMD = 0xFF
SEQ_MODULUS = 1 << 16


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection): ``binascii.crc_hqx``."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def next_seq(seq: int) -> int:
    """The sequence number after ``seq`` (u16, wrapping)."""
    return (seq + 1) % SEQ_MODULUS


@dataclass(frozen=True)
class Frame:
    """One decoded frame: command code, sequence number, payload bytes."""

    cmd: int
    seq: int
    payload: bytes

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(self.cmd, self.seq, self.payload)

    @property
    def is_error(self) -> bool:
        """An error frame (CMD 0xFF)."""
        return self.cmd == ERROR_CMD

    @property
    def is_reply(self) -> bool:
        """A frame from the board: a reply (CMD with the reply flag) or an error frame."""
        return self.cmd == ERROR_CMD or bool(self.cmd & REPLY_FLAG)


def encode_frame(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame (see the module docstring for the layout)."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"cmd: {cmd} is outside [0, 255]")
    if not 0 <= seq < SEQ_MODULUS:
        raise ValueError(f"seq: {seq} is outside [0, 65535]")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload: {len(payload)} bytes exceeds MAX_PAYLOAD = {MAX_PAYLOAD}")
    head = HEADER.pack(SYNC, len(payload), cmd, seq) + bytes(payload)
    return head + struct.pack("<H", crc16(head))


class FrameDecoder:
    """Stream decoder: feed it bytes as they arrive, get whole frames with a valid CRC back.

    Bytes before a sync byte are discarded. A header that declares more than ``max_payload``
    bytes, or a frame whose CRC does not match, costs only its sync byte: decoding resumes at the
    next byte, so a genuine frame that follows (or hides behind) garbage is still found.

    Attributes:
        crc_errors: frames dropped for a bad CRC.
        length_errors: headers dropped for a length above ``max_payload``.
        discarded_bytes: bytes skipped while looking for a sync byte, sync bytes of dropped
            frames included.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload: {max_payload} is outside [0, {MAX_PAYLOAD}]")
        self.max_payload = max_payload
        self._buf = bytearray()
        self.crc_errors = 0
        self.length_errors = 0
        self.discarded_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def needed(self) -> int:
        """How many more bytes complete the frame being received (at least 1)."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return HEADER_SIZE - len(buf)
        length = struct.unpack_from("<I", buf, 1)[0]
        return max(1, HEADER_SIZE + length + CRC_SIZE - len(buf))

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add received bytes; return every complete, CRC-valid frame now available, in order."""
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while buf:
            start = buf.find(SYNC)
            if start < 0:
                self.discarded_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.discarded_bytes += start
                del buf[:start]
            if len(buf) < HEADER_SIZE:
                break
            _, length, cmd, seq = HEADER.unpack_from(buf, 0)
            if length > self.max_payload:
                self.length_errors += 1
                self._drop_sync()
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if len(buf) < total:
                break
            (crc,) = struct.unpack_from("<H", buf, HEADER_SIZE + length)
            if crc != crc16(memoryview(buf)[: HEADER_SIZE + length]):
                self.crc_errors += 1
                self._drop_sync()
                continue
            frames.append(Frame(cmd, seq, bytes(buf[HEADER_SIZE : HEADER_SIZE + length])))
            del buf[:total]
        return frames

    def drop_partial(self) -> list[Frame]:
        """Give up on a frame that stopped arriving (inter-byte timeout): drop its sync byte and
        decode what follows it. Returns any frames found behind it."""
        if not self._buf:
            return []
        self._drop_sync()
        return self.feed(b"")

    def reset(self) -> None:
        """Forget everything buffered."""
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    def _drop_sync(self) -> None:
        self.discarded_bytes += 1
        del self._buf[:1]
