"""Kernel receive timestamps: when the bytes reached this machine, not when the event loop got to them.

A stamp taken in user space after a read includes everything that kept the event loop from reading:
other callbacks, a garbage collection, the process waiting for a CPU. In a load test those delays are
largest exactly when many streams produce tokens at once, so user-space stamps make the client look
like part of the server. Linux records the time each TCP segment arrived and hands it back on request
(``SO_TIMESTAMPNS``; ``recvmsg`` returns the arrival of the newest segment it read as an
``SCM_TIMESTAMPNS`` message, see ``socket(7)`` and ``Documentation/networking/timestamping.rst``).

:func:`install` makes an asyncio socket transport read that way and attaches a :class:`RxClock`, which
hands each read to a :class:`BodyClock` for the response being read: how many payload bytes each read
had delivered and when it arrived. :meth:`BodyClock.segments` then splits what a reader took from its
buffer into pieces stamped with their kernel arrival, converted to the ``now_ns()`` scale by the age
of the bytes (wall clock now − kernel stamp) rather than by an offset measured once, so a wall-clock
step only touches bytes that arrived just before it. :class:`StampingSocket` does the same for a reader that
calls ``recv`` itself and parses at once (the Locust scenarios' gevent connection): it keeps the arrival
of the latest read.

Only the plain selector transport of CPython's asyncio is hooked (checked on 3.10 to 3.13, which share
its shape), through private members: its read callback ``_read_ready_cb``, its socket ``_sock``, and
the helpers the stock callback uses for end of stream and errors. Anything else (TLS, uvloop, another
OS) keeps working with user-space stamps, and there is simply no :class:`RxClock`. Stamping is best
effort even where it is hooked: Linux turns receive timestamping on system-wide, lazily, when the first
socket asks for it (:func:`keep_enabled` asks early, once per process), so a read right after that may
come without a stamp. Such bytes keep the read time, and :attr:`BodyClock.missed` counts them.
"""

from __future__ import annotations

import atexit
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from trtclient.timing import now_ns

__all__ = [
    "ANCILLARY_SPACE",
    "SO_TIMESTAMPNS",
    "BodyClock",
    "ByteCounter",
    "RxClock",
    "StampingSocket",
    "enable",
    "install",
    "keep_enabled",
    "kernel_ns_of",
    "kernel_stamps_supported",
    "local_stamp",
]

#: ``SO_TIMESTAMPNS`` and ``SCM_TIMESTAMPNS`` share one value on Linux (asm-generic/socket.h).
_SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
#: The option, and the kind of the ancillary message that carries the stamp.
SO_TIMESTAMPNS = _SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
#: The ``recvmsg`` ancillary buffer size that holds one receive timestamp (0 where there is none).
ANCILLARY_SPACE = _ANCILLARY_SPACE


def kernel_stamps_supported() -> bool:
    """True where sockets can report the kernel arrival time of what they read (Linux)."""
    return sys.platform.startswith("linux") and _ANCILLARY_SPACE > 0


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it can't (then reads go unstamped)."""
    if not kernel_stamps_supported() or sock.type != socket.SOCK_STREAM:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


_keeper: socket.socket | None = None


def keep_enabled() -> bool:
    """Switch receive timestamping on for the life of this process, ahead of the first connection.

    Linux switches it on system-wide when the first socket asks and off when the last one closes, each
    time a moment later (deferred kernel work), and segments received in between carry no stamp. A
    load test that opens its connections and sends at once would lose the stamps of its first
    responses, and again after every pause without connections. One idle UDP socket that asks for
    stamps and stays open avoids both. Idempotent; False where stamps are not available.
    """
    global _keeper
    if _keeper is not None:
        return True
    if not kernel_stamps_supported():
        return False
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        keeper.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        keeper.bind(("127.0.0.1", 0))
    except OSError:
        keeper.close()
        return False
    _keeper = keeper
    atexit.register(keeper.close)
    _wait_until_stamping(keeper)
    return True


#: How long :func:`keep_enabled` waits for the kernel to start stamping (a loaded machine runs the
#: deferred switch late); past it, the first responses may go unstamped and say so.
STAMPING_WAIT_S = 2.0


def _wait_until_stamping(keeper: socket.socket) -> bool:
    """Send datagrams to ``keeper`` itself until one comes back with a kernel stamp (True), or
    :data:`STAMPING_WAIT_S` has passed (False). The switch is deferred kernel work: this waits for
    the observable result rather than for a guessed time."""
    deadline = time.monotonic() + STAMPING_WAIT_S
    address = keeper.getsockname()
    keeper.settimeout(0.05)
    try:
        while time.monotonic() < deadline:
            try:
                keeper.sendto(b"?", address)
                _, ancillary, _, _ = keeper.recvmsg(1, _ANCILLARY_SPACE)
            except OSError:  # includes the timeout: try again until the deadline
                continue
            if kernel_ns_of(ancillary):
                return True
        return False
    finally:
        keeper.setblocking(True)


def kernel_ns_of(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel arrival (epoch ns) in ``recvmsg``'s ancillary data; 0 when it carries none."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            return int(seconds * 1_000_000_000 + nanoseconds)
    return 0


class ByteCounter(Protocol):
    """A response body buffer that counts the bytes fed into it (aiohttp's ``StreamReader``)."""

    total_bytes: int


class RxClock:
    """The kernel arrival of each read on one connection, kept per response body.

    The connection's protocol tells the clock which body its parser is filling (``payload``, called
    before and after each read). The transport calls :meth:`before_read` and :meth:`on_read` around
    every read; each body whose byte count a read changed gets a mark (bytes so far, kernel stamp).
    The reader of a response calls :meth:`attach` with its body once the headers are parsed, takes
    stamped pieces with :meth:`BodyClock.segments`, and calls :meth:`detach` when it is done.

    Marks are kept per body, from its first byte, because a reader may attach late (its task busy
    while later tokens arrive) and a connection may be reused before the previous reader has let go
    (aiohttp frees it as soon as the last byte of a body is parsed).
    """

    __slots__ = ("_before", "_before_total", "_latest_ns", "_recent", "listener", "payload", "reads")

    #: Bodies whose marks are kept until attached or detached: the current one and a few before it.
    KEEP = 4

    def __init__(self, payload: Callable[[], ByteCounter | None]) -> None:
        self.payload = payload
        self._recent: list[BodyClock] = []
        self._latest_ns = 0
        self._before: ByteCounter | None = None
        self._before_total = 0
        self.reads = 0
        """Reads that carried a kernel timestamp (0 means the stamps are not arriving)."""
        self.listener: Callable[[], None] | None = None
        """Called after each read's marks are set: a reader that takes bytes in the read callback
        (rather than from a task woken later) takes them here, when their stamps are known."""

    def before_read(self) -> None:
        """Called just before a read's bytes go to the protocol."""
        body = self.payload()
        self._before = body
        self._before_total = body.total_bytes if body is not None else 0

    def on_read(self, kernel_ns: int) -> None:
        """One read finished feeding its bytes in; ``kernel_ns`` is its arrival (epoch), 0 if unknown."""
        if kernel_ns:
            self.reads += 1
        self._latest_ns = kernel_ns
        before = self._before
        if before is not None and before.total_bytes != self._before_total:
            clock = self._find(before)
            if clock is None:
                self._start(before)  # its bytes so far, stamped with this read
            else:
                clock.marks.append((before.total_bytes, kernel_ns))
        after = self.payload()
        if after is not None and after is not before and self._find(after) is None:
            self._start(after)  # a new response began in this read
        self._before = None
        if self.listener is not None:
            self.listener()

    def attach(self, body: ByteCounter) -> BodyClock:
        """The timing of a response body (its headers just parsed). For a body the clock has not seen
        (its protocol never reported it), bytes already buffered came with the latest read, whose stamp
        is then also :attr:`BodyClock.headers_kernel_ns`."""
        return self._find(body) or self._start(body)

    def _find(self, body: ByteCounter) -> BodyClock | None:
        for clock in self._recent:
            if clock.body is body:
                return clock
        return None

    def _start(self, body: ByteCounter) -> BodyClock:
        """Time ``body`` from now on; what it holds already came with the latest read."""
        clock = BodyClock(body, self._latest_ns)
        if body.total_bytes:
            clock.marks.append((body.total_bytes, self._latest_ns))
        self._recent.append(clock)
        if len(self._recent) > self.KEEP:
            del self._recent[0]
        return clock

    def detach(self, clock: BodyClock) -> None:
        """``clock``'s body is done: forget its marks (other bodies keep theirs)."""
        if clock in self._recent:
            self._recent.remove(clock)


class BodyClock:
    """The reads that delivered one response body, and how far its reader has taken it."""

    __slots__ = ("_consumed", "body", "headers_kernel_ns", "marks", "missed")

    def __init__(self, body: ByteCounter, headers_kernel_ns: int) -> None:
        self.body = body
        self.headers_kernel_ns = headers_kernel_ns
        """Kernel stamp (epoch ns, 0 if unknown) of the read that completed the headers, or of the
        latest read before attaching: when the headers were complete at the latest."""
        self.marks: deque[tuple[int, int]] = deque()
        """(body bytes fed so far, kernel stamp) after each read that fed it, oldest first."""
        self._consumed = 0
        self.missed = 0
        """Pieces stamped with the read time, for want of a kernel stamp."""

    def segments(self, data: bytes, read_ns: int, wall_ns: int, floor_ns: int = 0) -> list[tuple[bytes, int]]:
        """Split ``data`` (the next bytes taken from the body) into pieces with their arrival stamps.

        ``read_ns`` is the ``now_ns()`` reading taken when ``data`` was taken and ``wall_ns`` the wall
        clock at the same moment; stamps are :func:`local_stamp` of each piece's read, never below
        ``floor_ns``. Pieces without a kernel stamp keep ``read_ns``.
        """
        start = self._consumed
        end = start + len(data)
        self._consumed = end
        marks = self.marks
        pieces: list[tuple[bytes, int]] = []
        offset = start
        while marks and offset < end:
            mark_end, kernel_ns = marks[0]
            if mark_end <= offset:
                marks.popleft()
                continue
            cut = min(mark_end, end)
            if not kernel_ns:
                self.missed += 1
            stamp = local_stamp(kernel_ns, read_ns, wall_ns, floor_ns)
            pieces.append((data[offset - start : cut - start], stamp))
            offset = cut
            if cut == mark_end:
                marks.popleft()
        if offset < end:
            self.missed += 1
            pieces.append((data[offset - start :], read_ns))
        return pieces


def local_stamp(kernel_ns: int, read_ns: int, wall_ns: int, floor_ns: int = 0) -> int:
    """A kernel stamp (epoch ns) on the ``now_ns()`` scale: ``read_ns`` minus the age of the bytes.

    ``wall_ns`` is the wall clock read next to ``read_ns``. The result lies between ``floor_ns`` and
    ``read_ns`` whatever the clocks did; an unknown stamp (0) gives ``read_ns``.
    """
    if not kernel_ns:
        return read_ns
    return max(floor_ns, read_ns - max(0, wall_ns - kernel_ns))


def install(transport: Any, payload: Callable[[], ByteCounter | None]) -> RxClock | None:
    """Make ``transport`` read with kernel timestamps and return its clock; None where it can't.

    ``transport`` must be CPython's selector socket transport feeding a plain (not buffered) protocol;
    ``payload`` returns the body its protocol is filling (see :class:`RxClock`).
    """
    if not kernel_stamps_supported():
        return None
    sock = getattr(transport, "_sock", None)
    current = getattr(transport, "_read_ready_cb", None)
    plain_reader = getattr(transport, "_read_ready__data_received", None)
    if not isinstance(sock, socket.socket) or current is None or current != plain_reader:
        return None
    if not enable(sock):
        return None
    clock = RxClock(payload)
    transport._read_ready_cb = _stamping_reader(transport, sock, clock)
    return clock


def _stamping_reader(transport: Any, sock: socket.socket, clock: RxClock) -> Callable[[], None]:
    """The transport's read callback, reading with ``recvmsg`` to get each read's arrival time.

    Behaves as the stock callback does: nothing on a spurious wake-up, end of stream on an empty read,
    a fatal transport error on a failed read or a failing protocol.
    """
    recvmsg = sock.recvmsg
    space = _ANCILLARY_SPACE

    def read_ready() -> None:
        if transport._conn_lost:
            return
        try:
            data, ancillary, _flags, _address = recvmsg(transport.max_size, space)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            transport._read_ready__on_eof()
            return
        kernel_ns = kernel_ns_of(ancillary) if ancillary else 0
        clock.before_read()
        try:
            transport._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        clock.on_read(kernel_ns)

    return read_ready


class StampingSocket:
    """A connected socket whose ``recv`` also notes when the kernel received what it returned.

    For readers that pull bytes themselves and parse them at once (a gevent or blocking HTTP client):
    after each :meth:`recv`, :attr:`arrival_ns` is the arrival of the newest segment it read, on the
    ``now_ns()`` scale (:func:`local_stamp`), or the read time when the read came without a kernel stamp
    (:attr:`stamped` then says False). Anything a reader takes from its buffer arrived with the latest
    ``recv`` at the latest, as long as it reads only when its buffer cannot complete what it needs.
    Call :func:`enable` on the socket first. Other calls pass through to the socket.
    """

    __slots__ = ("arrival_ns", "sock", "stamped")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.arrival_ns = 0
        self.stamped = False

    def recv(self, size: int) -> bytes:
        """Read up to ``size`` bytes, noting their kernel arrival."""
        data, ancillary, _flags, _address = self.sock.recvmsg(size, _ANCILLARY_SPACE)
        read_ns = now_ns()
        kernel_ns = kernel_ns_of(ancillary) if ancillary else 0
        self.stamped = kernel_ns != 0
        self.arrival_ns = local_stamp(kernel_ns, read_ns, time.time_ns()) if kernel_ns else read_ns
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
