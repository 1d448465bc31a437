"""HTTP/1.1 responses, I/O-free: the head (status, headers, how the body is framed) and the body's
framing (chunked, a ``Content-Length``, or up to the end of the connection), bytes in, body bytes out.

Written for :mod:`trtclient.transports.raw_stream`, whose streamed bodies are one small chunk per
read: :meth:`BodyFramer.feed` takes that shape (one whole chunk, nothing buffered) in a few slices.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHUNK_START", "DONE", "MAX_HEAD", "BodyFramer", "HTTPParseError", "ResponseHead", "parse_head"]

#: Longest response head accepted (status line and headers).
MAX_HEAD = 65536

_SIZE, _DATA, _CRLF, _TRAILER, _LENGTH, _UNTIL_CLOSE, _DONE = range(7)
#: :attr:`BodyFramer.state` once the body has ended (what :attr:`BodyFramer.done` tests).
DONE = _DONE
#: :attr:`BodyFramer.state` of a chunked body between two chunks (a size line comes next).
CHUNK_START = _SIZE


class HTTPParseError(ValueError):
    """The bytes are not an HTTP/1.1 response this reader understands."""


@dataclass(frozen=True)
class ResponseHead:
    """A parsed response head: status, headers (names lower-cased), and whether the connection can
    carry another request once the body has been read."""

    status: int
    headers: dict[str, str]
    keep_alive: bool

    def framer(self, *, bodiless: bool = False) -> BodyFramer:
        """The framing of the body that follows this head (``bodiless``: an answer to HEAD)."""
        if bodiless or self.status in (204, 304) or 100 <= self.status < 200:
            return BodyFramer(_DONE)
        encoding = self.headers.get("transfer-encoding", "").lower()
        if encoding:
            if encoding.rsplit(",", 1)[-1].strip() != "chunked":
                raise HTTPParseError(f"unsupported transfer-encoding {encoding!r}")
            return BodyFramer(_SIZE)
        length = self.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise HTTPParseError(f"invalid content-length {length!r}")
            size = int(length)
            return BodyFramer(_LENGTH if size else _DONE, size)
        return BodyFramer(_UNTIL_CLOSE)


def parse_head(buffer: bytes) -> tuple[ResponseHead, int] | None:
    """The head at the start of ``buffer`` and where its body starts; None while it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise HTTPParseError(f"response head longer than {MAX_HEAD} bytes")
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise HTTPParseError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HTTPParseError(f"invalid header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return ResponseHead(int(code), headers, keep_alive), end + 4


class BodyFramer:
    """Takes the bytes after a head, returns the body's bytes; :attr:`done` once the body ended
    (a body framed by the end of the connection ends with :meth:`eof`). Bytes past the end of the
    body are kept in :attr:`extra`."""

    __slots__ = ("buffer", "extra", "left", "state")

    def __init__(self, state: int, left: int = 0) -> None:
        self.state = state
        self.left = left
        self.buffer = b""
        self.extra = b""

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def eof(self) -> bool:
        """The connection ended: True when that ends the body, False when it cut the body short."""
        if self.state == _UNTIL_CLOSE:
            self.state = _DONE
        return self.state == _DONE

    def feed(self, data: bytes) -> list[bytes]:
        """The body bytes in ``data`` (and any part kept from before), in order."""
        state = self.state
        if state == _SIZE and not self.buffer:
            # The common shape of a streamed body: whole chunks (one per read, or a few when the
            # reader fell behind), each taken in a few slices.
            pieces: list[bytes] = []
            pos, size = 0, len(data)
            while True:
                line_end = data.find(b"\r\n", pos)
                if not 0 < line_end - pos <= 8:
                    break
                try:
                    chunk = int(data[pos:line_end], 16)
                except ValueError:
                    break
                end = line_end + 2 + chunk
                if chunk <= 0 or end + 2 > size or data[end : end + 2] != b"\r\n":
                    break
                pieces.append(data[line_end + 2 : end])
                pos = end + 2
                if pos == size:
                    return pieces
            if pos:
                return pieces + self._chunked(data[pos:])
        if state == _UNTIL_CLOSE:
            return [data] if data else []
        if state == _LENGTH:
            if len(data) <= self.left:
                self.left -= len(data)
                if not self.left:
                    self.state = _DONE
                return [data] if data else []
            self.extra = data[self.left :]
            piece = data[: self.left]
            self.left = 0
            self.state = _DONE
            return [piece]
        if state == _DONE:
            self.extra += data
            return []
        return self._chunked(self.buffer + data if self.buffer else data)

    def _chunked(self, data: bytes) -> list[bytes]:
        pieces: list[bytes] = []
        pos, size = 0, len(data)
        state = self.state
        while pos < size:
            if state == _DATA:
                take = min(self.left, size - pos)
                pieces.append(data[pos : pos + take])
                pos += take
                self.left -= take
                if not self.left:
                    state = _CRLF
                continue
            if state == _CRLF:
                if size - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise HTTPParseError("chunk data not followed by CRLF")
                pos += 2
                state = _SIZE
                continue
            if state == _SIZE:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    if size - pos > 1024:
                        raise HTTPParseError("chunk size line too long")
                    break
                text = data[pos:line_end].split(b";", 1)[0].strip()
                try:
                    chunk = int(text, 16)
                except ValueError:
                    raise HTTPParseError(f"invalid chunk size {text[:20]!r}") from None
                if chunk < 0:
                    raise HTTPParseError(f"invalid chunk size {text[:20]!r}")
                pos = line_end + 2
                if chunk:
                    state, self.left = _DATA, chunk
                else:
                    state = _TRAILER
                continue
            if state == _TRAILER:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    break
                if line_end == pos:  # the empty line that ends the trailers
                    state = _DONE
                    self.extra = data[line_end + 2 :]
                    pos = size
                    break
                pos = line_end + 2  # a trailer field: ignored
                continue
            break
        self.state = state
        self.buffer = data[pos:] if state != _DONE else b""
        return pieces
