"""One keep-alive HTTP/1.1 connection streaming Triton ``generate_stream`` requests, for gevent.

A Locust user holds one :class:`Connection`. The request body, the mapping of error statuses and the
parsing of events are ``trtclient``'s (:mod:`trtclient.responses`, :mod:`trtclient.streaming`,
:class:`~trtclient.sse.SSEDecoder`); failures are raised as ``trtclient`` exceptions, so
:func:`trtclient.errors.error_kind` names them. Only the socket work is done here, with
geventhttpclient's C parser for the HTTP framing (status line, headers, chunked encoding). Like every
transport it fills the caller's :class:`~trtclient.streaming.StreamHead` and feeds the caller's
:class:`~trtclient.streaming.StreamState`; it never sees a record.

Reads never wait for more bytes than the server has sent: each read takes all the body bytes that are
in, in one go (one ``recv`` only when none are buffered), and the SSE decoder splits them into events.
(Reading fixed-size blocks instead, as ``FastHttpSession.iter_lines`` does with 1 KiB, holds a short
event back until the block fills, which delays TTFT and bunches ITL; reading line by line costs two
reads and two decoder calls per event.) Each read is stamped once, with the kernel's arrival time of
the latest ``recv`` (:class:`trtclient.rxstamp.StampingSocket`), so a busy process does not delay the
stamps, and each event carries the stamp of the read that brought its first byte;
over TLS, elsewhere than Linux, with ``kernel_stamps=False`` or when a read comes without a stamp, with
``trtclient.timing.now_ns()`` right after the read, before any JSON work. The head's ``arrival_clock``
says which (``"kernel"`` or ``"read"``).

No locust import: under Locust the standard ``socket`` module is gevent's; elsewhere (unit tests)
this is plain blocking I/O. geventhttpclient comes with the ``locust`` extra; this is the only module
of trtclient that imports it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketResponse

from trtclient import errors, rxstamp
from trtclient.constants import READ_CHUNK_SIZE, USER_AGENT
from trtclient.options import JSON_HEADERS, Timeout, make_ssl_context, safe_headers
from trtclient.responses import error_message, parse_retry_after, status_error
from trtclient.schema import StreamChunk
from trtclient.sse import SSEDecoder
from trtclient.streaming import StreamHead, StreamState
from trtclient.timing import now_ns

__all__ = ["CHECK_FRESH_NS", "Connection"]

#: A request sent this soon after :meth:`Connection.prepare` found the connection open does not check
#: it again (a Locust user prepares it 2 ms before an arrival's time).
CHECK_FRESH_NS = 20_000_000


class Connection:
    """One user's keep-alive HTTP/1.1 connection: send a generate request, hand on the events.

    geventhttpclient's parser handles the HTTP framing; the body is read as it arrives, all that is in
    at each read, stamped with its arrival.
    """

    def __init__(
        self,
        base_url: str,
        timeout: Timeout,
        *,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        kernel_stamps: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = f"{netloc}:{self.port}"
        self.family = _address_family(self.host)
        self.sock: socket.socket | None = None
        self.checked_ns: int | None = None
        """When :meth:`prepare` last found the connection open (``now_ns()``); None once a request went."""
        self.check_fresh_ns = CHECK_FRESH_NS
        self.kernel_stamps = kernel_stamps and rxstamp.keep_enabled()
        self.stamper: rxstamp.StampingSocket | None = None
        fixed = {"User-Agent": USER_AGENT, **JSON_HEADERS, **(headers or {})}
        self.fixed_head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self.verify = verify

    def __repr__(self) -> str:  # header values stay out of reprs
        return f"Connection({self.base_url!r})"

    def connect(self) -> None:
        """Open the connection now rather than at the first request (failures are left for it)."""
        if self.sock is None:
            with contextlib.suppress(errors.TritonTransportError):
                self._connect(self.base_url)

    def prepare(self) -> None:
        """Get the connection ready for a request due soon, so that its send is only the write: replace a
        kept connection the server has closed while it was idle, open one if there is none (failures are
        left for the request). A request sent within ``check_fresh_ns`` then skips that check."""
        sock = self.sock
        if sock is not None and _readable(sock):
            self.close()
        self.connect()
        self.checked_ns = now_ns() if self.sock is not None else None

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        sock, self.sock = self.sock, None
        self.checked_ns = None
        self.stamper = None
        if sock is not None:
            sock.close()

    def _connect(self, url: str) -> socket.socket:
        sock: socket.socket | None = None
        try:
            if self.family is None:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout.connect)
            else:  # an address already: no resolver round trip
                sock = socket.socket(self.family, socket.SOCK_STREAM)
                sock.settimeout(self.timeout.connect)
                sock.connect((self.host, self.port))
            if self.tls:
                sock = make_ssl_context(self.verify).wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, TimeoutError):
                raise errors.ConnectTimeoutError(
                    f"connecting to {url} timed out", url=url, timeout=self.timeout.connect
                ) from None
            raise errors.TritonConnectionError(f"cannot connect to {url}: {exc}", url=url) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout.read)
        self.sock = sock
        if self.kernel_stamps and not self.tls and rxstamp.enable(sock):
            self.stamper = rxstamp.StampingSocket(sock)
        return sock

    def stream(
        self,
        path: str,
        body: bytes,
        head: StreamHead,
        state: StreamState,
        on_chunk: Callable[[StreamChunk], None],
    ) -> None:
        """POST ``body`` to ``path`` and call ``on_chunk`` for each event parsed into ``state``; fill
        ``head`` as the exchange goes; raise trtclient errors."""
        url = head.url = state.url = self.base_url + path
        request_head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n{self.fixed_head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        response = self._send(url, request_head + body, head)
        stamper = self.stamper
        kernel = stamper is not None and stamper.stamped  # "kernel" while every read had a stamp
        finished = False
        try:
            head.headers_ns = now_ns()
            if stamper is not None and kernel:
                head.headers_ns = max(head.sent_ns, stamper.arrival_ns)
            floor = head.headers_ns
            head.status_code = response.status_code
            head.headers = safe_headers(dict(response.items()))
            if response.status_code != 200:
                payload = response.read()
                raise status_error(
                    response.status_code,
                    error_message(payload),
                    url=url,
                    retry_after=parse_retry_after(_header(response, "retry-after")),
                )
            decoder = SSEDecoder()
            feed, read, chunk_from_event = decoder.feed, response.read_available, state.chunk_from_event
            while data := read():
                arrival = now_ns()
                if stamper is not None:
                    if stamper.stamped:
                        arrival = max(floor, stamper.arrival_ns)
                    else:
                        kernel = False
                for event in feed(data, arrival):
                    on_chunk(chunk_from_event(event))
            state.finish(decoder.finish())
            finished = not response.should_close()
        except TimeoutError:
            raise errors.ReadTimeoutError(
                f"no data from {url} within {self.timeout.read} s", url=url, timeout=self.timeout.read
            ) from None
        except (OSError, HTTPParseError) as exc:
            raise errors.TritonDisconnectedError(f"connection to {url} dropped: {exc}", url=url) from None
        finally:
            head.arrival_clock = "kernel" if kernel else "read"
            if not finished:
                self.close()

    def _send(self, url: str, data: bytes, head: StreamHead) -> _BodyReader:
        """Send the request and read the response head. A kept connection the server has closed
        while it was idle is replaced before sending (unless :meth:`prepare` has just checked it); once
        sent, a request is never sent again."""
        sock, checked_ns, self.checked_ns = self.sock, self.checked_ns, None
        fresh = checked_ns is not None and now_ns() - checked_ns <= self.check_fresh_ns
        if sock is not None and not fresh and _readable(sock):  # idle, yet readable: the server closed it
            self.close()
            sock = None
        if sock is None:
            sock = self._connect(url)
        head.sent_ns = now_ns()
        try:
            sock.sendall(data)
            reader = sock if self.stamper is None else self.stamper
            return _BodyReader(reader, block_size=READ_CHUNK_SIZE, method="POST")
        except TimeoutError:
            self.close()
            raise errors.ReadTimeoutError(
                f"no response from {url} within {self.timeout.read} s", url=url, timeout=self.timeout.read
            ) from None
        except (OSError, HTTPParseError) as exc:
            self.close()
            raise errors.TritonDisconnectedError(f"connection to {url} dropped: {exc}", url=url) from None


class _BodyReader(HTTPSocketResponse):
    """A response whose body is taken as it comes: all the bytes parsed so far, at once."""

    def read_available(self) -> bytes:
        """The body bytes received and not yet taken, reading the socket once only when there are none;
        ``b""`` at the end of the body."""
        buffer = self._body_buffer
        while not buffer:
            if self.message_complete:
                return b""
            sock = self._sock
            if sock is None:
                raise HTTPConnectionClosed("connection closed.")
            try:
                data = sock.recv(self.block_size)
                if not data:
                    raise HTTPConnectionClosed("connection closed before the end of the body")
                self.feed(data)
            except BaseException:
                self.release()
                raise
        data = bytes(buffer)
        del buffer[:]
        return data


def _readable(sock: socket.socket) -> bool:
    """Whether the socket has something to read now (poll, not select: select refuses descriptors
    from 1024 up, which a process with a thousand connections has)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _address_family(host: str) -> socket.AddressFamily | None:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def _header(response: HTTPSocketResponse, name: str) -> str | None:
    value = response.get(name)
    return value[0] if isinstance(value, list) else value
