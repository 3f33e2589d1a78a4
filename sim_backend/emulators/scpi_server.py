"""The TCP server under every wire-level emulator: latency, fault injection, message counting.

An emulated instrument listens on loopback and speaks newline-terminated messages, the way a
LAN instrument's raw-socket port does (Keithley and Keysight instruments use port 5025). pyvisa-py
reaches it as ``TCPIP0::127.0.0.1::PORT::SOCKET`` with ``read_termination="\\n"``.

Each received message is handled in order, under the instrument's lock (a real instrument has
one command interpreter, whatever the number of connections). A reply is sent no earlier than
``latency_s`` after the message arrived: the instrument's per-command latency.

Faults (:class:`Fault`) make the emulator misbehave on purpose, once or every time a message
matches: ``timeout`` (the message runs but its reply is never sent), ``garbled`` (the reply is
corrupted), ``disconnect`` (the message runs, then the connection drops before any reply: the
instrument has done the work, outputs on and all, and the host never hears back; a new
connection is accepted). The ``stuck_relay`` fault is the switch matrices' own (see ``keithley707b.py``).
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

FaultKind = Literal["timeout", "garbled", "disconnect", "stuck_relay"]
FAULT_KINDS: tuple[str, ...] = ("timeout", "garbled", "disconnect", "stuck_relay")

#: Characters a garbled reply is made of: printable, but no number parses from them.
_GARBAGE = "#%&?!$~^"


@dataclass
class Fault:
    """One injected fault.

    Attributes:
        kind: ``timeout`` | ``garbled`` | ``disconnect`` | ``stuck_relay``.
        after: the fault fires on the first matching message after this many messages have
            been received by the instrument (0: from the first message on).
        match: only messages containing this text (case-insensitive) trigger it; ``None``: any
            message (for ``timeout`` and ``garbled``: any message that has a reply).
        once: fire once (default) or on every matching message.
        channel: ``stuck_relay`` only: the crosspoint that stays closed once closed, in the
            matrix's own channel syntax (707B ``"1A03"``, E5250A ``"10103"``).
    """

    kind: FaultKind
    after: int = 0
    match: str | None = None
    once: bool = True
    channel: str | None = None
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind: '{self.kind}' is not one of {', '.join(FAULT_KINDS)}")
        if self.after < 0:
            raise ValueError(f"fault after: {self.after} must be >= 0")
        if self.kind == "stuck_relay" and not self.channel:
            raise ValueError("fault stuck_relay: give the channel that sticks (e.g. channel='1A03')")

    def armed(self) -> bool:
        return not (self.once and self.fired)

    def matches(self, message: str, received: int) -> bool:
        if not self.armed() or received <= self.after:
            return False
        return self.match is None or self.match.lower() in message.lower()


_FAULT_SPEC = re.compile(r"^(?P<kind>[a-z_]+)(?:@(?P<after>\d+))?(?::(?P<arg>.+))?$")


def parse_fault(spec: str) -> Fault:
    """A fault from text: ``KIND[@AFTER][:ARG]``, e.g. ``timeout@40``, ``garbled:measure``,
    ``disconnect@10``, ``stuck_relay:1A03`` (ARG is the match text, or the relay for
    ``stuck_relay``).

    Raises:
        ValueError: malformed text or an unknown kind (one line naming the allowed kinds).
    """
    m = _FAULT_SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"fault: '{spec}' is not KIND[@AFTER][:ARG] (kinds: {', '.join(FAULT_KINDS)})")
    kind = m.group("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault: kind '{kind}' is not one of {', '.join(FAULT_KINDS)}")
    after = int(m.group("after") or 0)
    arg = m.group("arg")
    if kind == "stuck_relay":
        return Fault("stuck_relay", after=after, channel=arg, once=False)
    return Fault(kind, after=after, match=arg)  # type: ignore[arg-type]


def garble(reply: str, seed: int = 0) -> str:
    """The reply with every other character replaced by junk (same length, still one line)."""
    rng = random.Random(seed)
    chars = list(reply or "0")
    for i in range(0, len(chars), 2):
        chars[i] = rng.choice(_GARBAGE)
    return "".join(chars)


class InstrumentServer(ABC):
    """A newline-message TCP server for one emulated instrument.

    Subclasses implement :meth:`handle_message` (one message in, the reply text or ``None``
    out) and :meth:`reset_state` (power-on state). Use as a context manager or call
    :meth:`start` / :meth:`stop`.

    Args:
        host: interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        latency_s: per-message latency (s): no reply leaves earlier than this after its message.
        faults: faults to inject.
        on_message: called with every message as it arrives (tests use it to act mid-run).
    """

    #: Instrument model name, e.g. ``keithley2600``.
    model: str = "instrument"
    #: Realistic per-message latency (s) when none is given.
    default_latency_s: float = 1e-3

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.latency_s = self.default_latency_s if latency_s is None else float(latency_s)
        if self.latency_s < 0:
            raise ValueError(f"latency_s: {self.latency_s} must be >= 0 s")
        self.faults: list[Fault] = list(faults)
        self.on_message = on_message
        self.lock = threading.RLock()
        #: unexpected exceptions :meth:`handle_message` raised (the message had no reply, the
        #: connection stayed up); tests check that it stays empty
        self.internal_errors: list[str] = []
        self.messages_received = 0
        self.replies_sent = 0
        self.connections_accepted = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._running = threading.Event()
        self._schedule_lock = threading.Lock()
        self._busy_until = 0.0

    # ------------------------------------------------------------------ lifetime
    @property
    def resource(self) -> str:
        """The VISA resource string pyvisa-py reaches this emulator by."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> str:
        """Listen and serve in background threads; returns the resource string."""
        if self._running.is_set():
            return self.resource
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as exc:
            listener.close()
            raise OSError(
                f"{self.model} emulator: cannot listen on {self.host}:{self.port} ({exc.strerror})"
            ) from None
        listener.listen(4)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running.set()
        thread = threading.Thread(target=self._accept_loop, name=f"{self.model}-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.resource

    def stop(self) -> None:
        """Stop listening and drop every connection (safe to call twice)."""
        self._running.clear()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._clients_lock:
            clients = list(self._clients)
        for conn in clients:
            self._drop(conn)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def inject(self, fault: Fault) -> None:
        """Add a fault while running."""
        with self.lock:
            self.faults.append(fault)

    def _fault(self, kinds: tuple[str, ...], message: str, received: int) -> Fault | None:
        for fault in self.faults:
            if fault.kind in kinds and fault.matches(message, received):
                return fault
        return None

    # ------------------------------------------------------------------ serving
    def _accept_loop(self) -> None:
        listener = self._listener
        while self._running.is_set() and listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._clients_lock:
                self._clients.add(conn)
            self.connections_accepted += 1
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"{self.model}-conn", daemon=True
            )
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _drop(self, conn: socket.socket) -> None:
        with self._clients_lock:
            self._clients.discard(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while self._running.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    arrived = time.perf_counter()
                    message = raw.decode("ascii", errors="replace").strip("\r\x00 ")
                    if not message:
                        continue
                    if not self._serve_message(conn, message, arrived):
                        return
        finally:
            self._drop(conn)

    def _serve_message(self, conn: socket.socket, message: str, arrived: float) -> bool:
        """Handle one message; False when the connection must close.

        Messages are executed one after the other, in order; a message's reply (and the next
        message) waits until ``latency_s`` after the later of its arrival and the previous
        message's completion. The emulator's own work happens inside that window, as an
        instrument's does."""
        with self._schedule_lock:
            done_at = max(arrived, self._busy_until) + self.latency_s
            self._busy_until = done_at
        with self.lock:
            self.messages_received += 1
            received = self.messages_received
            if self.on_message is not None:
                self.on_message(message)
            try:
                reply = self.handle_message(message)
            except Exception as exc:  # nothing a client sends may take the instrument down
                self.internal_errors.append(f"{message!r}: {type(exc).__name__}: {exc}")
                reply = None
            dropped = self._fault(("disconnect",), message, received)
            if dropped is not None:
                dropped.fired += 1
                return False
            if reply is not None:
                fault = self._fault(("timeout", "garbled"), message, received)
                if fault is not None:
                    fault.fired += 1
                    reply = None if fault.kind == "timeout" else garble(reply, received)
        wait = done_at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if reply is None:
            return True
        self.replies_sent += 1
        try:
            # latin-1: one byte per character, so that binary blocks (``#<n><len><bytes>``,
            # IEEE 488.2 section 8.7.9) built as text go out byte for byte
            conn.sendall(reply.encode("latin-1", errors="replace") + b"\n")
        except OSError:
            return False
        return True

    # ------------------------------------------------------------------ the instrument
    @abstractmethod
    def handle_message(self, message: str) -> str | None:
        """Execute one message; return the reply (without terminator) or ``None`` for no reply."""

    @abstractmethod
    def reset_state(self) -> None:
        """Return to the power-on state (outputs off, relays open)."""
