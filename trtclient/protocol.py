"""The I/O-free core shared by every client: URLs, request bodies, input-name mapping, response and
error parsing, streamed-text bookkeeping, error kinds and retry maths.

Nothing here touches a socket or a clock, so the async client, the sync client and the gRPC
transport apply exactly the same rules. Wire facts come from ``triton-protocol.md`` (server
``src/http_server.cc`` and the TRT-LLM backend templates) and ``embedded-triton.md``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import ValidationError

from trtclient import errors
from trtclient.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_GRPC_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    RETRY_INITIAL_DELAY,
    RETRY_JITTER,
    RETRY_MAX_DELAY,
)
from trtclient.schema import GenerateRequest, GenerateResponse, StreamChunk
from trtclient.sse import SSEEvent

__all__ = [
    "DEFAULT_TIMEOUT",
    "ERROR_KINDS",
    "INPUT_ALIASES",
    "JSON_HEADERS",
    "ModelInputs",
    "RetryPolicy",
    "StreamState",
    "TextMode",
    "Timeout",
    "build_body",
    "check_headers",
    "chunks_from_events",
    "encode_body",
    "error_kind",
    "error_message",
    "json_object",
    "make_request",
    "make_ssl_context",
    "metrics_url_for",
    "model_path",
    "move_credentials",
    "normalize_url",
    "parse_generate_body",
    "parse_json",
    "parse_retry_after",
    "redact_url",
    "repository_list",
    "response_error",
    "retry_delay",
    "safe_headers",
    "should_retry",
    "ssl_option",
    "stats_path",
    "status_error",
    "status_error_class",
    "text_mode_from_config",
    "validation_error",
    "version_param",
]

TextMode = Literal["delta", "cumulative"]

#: Logical input name -> every spelling a server may use, newest first. TRT-LLM 0.20 renamed
#: min_length to min_tokens and random_seed to seed (``triton-protocol.md`` §2.1); an old name sent
#: to a new server (or the reverse) silently becomes an ignored request parameter.
INPUT_ALIASES: dict[str, tuple[str, ...]] = {
    "min_tokens": ("min_tokens", "min_length"),
    "min_length": ("min_tokens", "min_length"),
    "seed": ("seed", "random_seed"),
    "random_seed": ("seed", "random_seed"),
}

#: Every value error_kind() returns, with its meaning.
ERROR_KINDS: dict[str, str] = {
    "invalid_request": "the request failed validation; nothing was sent",
    "unsupported_input": "the model has no such input; nothing was sent",
    "connect": "could not connect (refused, DNS, TLS)",
    "disconnect": "the connection dropped after the request was sent",
    "transport": "another transport failure",
    "timeout_connect": "connecting took longer than the connect timeout",
    "timeout_read": "no byte arrived within the read timeout",
    "timeout_total": "the whole request took longer than the total timeout",
    "queue_full": "Triton's queue was full ('Exceeds maximum queue size': 503 directly, 400 via an ensemble)",
    "http_<status>": "the server answered with this error status (http_400, http_404, http_500, http_503...)",
    "grpc_<code>": "the gRPC call failed with this status (grpc_invalid_argument, grpc_unavailable...)",
    "stream_error": "an error event arrived inside a 200 stream",
    "error_body": "a 200 /generate body carried an error",
    "empty_stream": "a 200 stream ended without any event",
    "invalid_json": "the server sent something that is not the expected JSON",
    "malformed_sse": "the event stream broke off in the middle of an event",
    "cancelled": "the caller cancelled the request",
    "launcher": "starting a server failed",
    "other": "anything else",
}


# --- URLs ---------------------------------------------------------------------------------------


def normalize_url(url: str, *, transport: Literal["http", "grpc"] = "http") -> str:
    """Check a server address and return it in canonical form.

    HTTP: ``http(s)://host:port[/prefix]`` without a trailing slash; a bare ``host:port`` gets
    ``http://``. gRPC: ``host:port`` (a ``grpc://``/``http://`` prefix is dropped, ``https://`` and
    ``grpcs://`` are kept to ask for TLS).
    """
    text = url.strip()
    if not text:
        raise errors.RequestValidationError("the server URL is empty; pass e.g. http://127.0.0.1:8000")
    if "://" not in text:
        text = ("http://" if transport == "http" else "grpc://") + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    allowed = {"http", "https"} if transport == "http" else {"grpc", "grpcs", "http", "https"}
    if scheme not in allowed:
        raise errors.RequestValidationError(
            f"unsupported URL scheme {scheme!r} in {redact_url(url)!r} for the {transport} transport; "
            + ("use http:// or https://" if transport == "http" else "use host:port or grpcs://host:port")
        )
    if not parts.hostname:
        raise errors.RequestValidationError(f"no host in the server URL {redact_url(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise errors.RequestValidationError(f"invalid port in the server URL {redact_url(url)!r}") from None
    if transport == "grpc":
        tls = scheme in ("grpcs", "https")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        return f"{'grpcs://' if tls else ''}{host}:{port or DEFAULT_GRPC_PORT}"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def move_credentials(url: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Take ``user:password@`` out of a URL and send it as an ``Authorization: Basic`` header instead.

    The HTTP libraries would otherwise carry the credentials in the URL they log. A URL with
    credentials and an ``Authorization`` header together is ambiguous and refused.
    """
    raw = url.strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    if parts.username is None and parts.password is None:
        return url, dict(headers)
    if any(name.lower() == "authorization" for name in headers):
        raise errors.RequestValidationError(
            "the URL carries user:password and headers= has an Authorization header; keep only one",
            field="headers",
        )
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(pair.encode()).decode()
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    cleaned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if "://" not in raw:
        cleaned = cleaned.split("://", 1)[1]
    return cleaned, {**headers, "Authorization": f"Basic {token}"}


def redact_url(url: str) -> str:
    """The URL without user:password (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def model_path(model: str, version: str | int | None = None) -> str:
    """``/v2/models/{model}[/versions/{version}]`` with the model name escaped."""
    if not model:
        raise errors.RequestValidationError("the model name is empty", field="model")
    path = f"/v2/models/{quote(model, safe='')}"
    if version is not None and str(version) != "":
        text = str(version)
        if not text.isdigit():
            raise errors.RequestValidationError(
                f"model version must be a number, not {text!r}", field="model_version"
            )
        path += f"/versions/{text}"
    return path


def version_param(version: str | int | None) -> str | None:
    """A model version as the API calls take it: ``None`` (or ``""``) lets the server choose."""
    return None if version is None or version == "" else str(version)


def stats_path(model: str, version: str | None = None) -> str:
    """The statistics path of one model, or ``/v2/models/stats`` (every model) when ``model`` is empty."""
    return (model_path(model, version) if model else "/v2/models") + "/stats"


def metrics_url_for(url: str) -> str:
    """Triton's default metrics address for a server URL: same host, port 8002, ``/metrics``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if parts.scheme in ("https", "grpcs") else "http"
    return f"{scheme}://{host}:{DEFAULT_METRICS_PORT}/metrics"


# --- timeouts, TLS, headers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timeout:
    """Deadlines in seconds: ``connect`` (TCP + TLS), ``read`` (longest silence between two reads),
    ``total`` (the whole request, stream included). ``None`` means no limit."""

    connect: float | None = DEFAULT_CONNECT_TIMEOUT
    read: float | None = DEFAULT_READ_TIMEOUT
    total: float | None = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise errors.RequestValidationError(f"timeout {name} must be > 0 or None, not {value!r}")

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """A Timeout from a Timeout, a number (connect and read) or None (no limits at all)."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, total=None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.RequestValidationError(f"timeout must be a number, a Timeout or None, not {value!r}")
        return cls(connect=float(value), read=float(value), total=DEFAULT_TOTAL_TIMEOUT)


#: The default deadlines (connect 10 s, read 300 s, no total limit).
DEFAULT_TIMEOUT = Timeout()


def make_ssl_context(
    verify: bool | str | ssl.SSLContext = True, cert: str | tuple[str, str] | None = None
) -> ssl.SSLContext:
    """A client TLS context: ``verify`` is True (system CAs), False (no checks), a CA bundle path, or a
    ready context; ``cert`` is a client certificate file or a (certificate, key) pair."""
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        context = ssl.create_default_context()
    else:
        try:
            context = ssl.create_default_context(cafile=str(verify))
        except (OSError, ssl.SSLError) as exc:
            raise errors.RequestValidationError(f"cannot load the CA bundle {verify!r}: {exc}") from None
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise errors.RequestValidationError(f"cannot load the client certificate: {exc}") from None
    return context


def ssl_option(
    verify: bool | str | ssl.SSLContext, cert: str | tuple[str, str] | None
) -> bool | ssl.SSLContext:
    """What the HTTP libraries take for TLS: ``True`` (default checks) or :func:`make_ssl_context`'s."""
    return make_ssl_context(verify, cert) if (verify is not True or cert is not None) else True


_SECRET_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "authorization", "proxy-authorization", "www-authenticate", "cookie"}
)


def safe_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Response headers with credentials-bearing values replaced by ``[redacted]``."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name).lower()
        result[key] = "[redacted]" if key in _SECRET_RESPONSE_HEADERS else str(value)
    return result


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Copy the user's headers after checking that names and values are strings (values never shown)."""
    result: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise errors.RequestValidationError(
                f"header {name!r}: names and values must be non-empty strings", field="headers"
            )
        if "\n" in value or "\r" in value:
            raise errors.RequestValidationError(
                f"header {name!r}: value contains a line break", field="headers"
            )
        result[name] = value
    return result


# --- requests -----------------------------------------------------------------------------------


def make_request(prompt: str | GenerateRequest, fields: Mapping[str, Any]) -> GenerateRequest:
    """Validate a prompt plus keyword inputs (or a ready request) into a GenerateRequest.

    Raises :class:`~trtclient.errors.RequestValidationError` naming the first bad field.
    """
    if isinstance(prompt, GenerateRequest):
        if not fields:
            return prompt
        merged = prompt.model_dump(exclude_none=True)
        merged.update(fields)
        data: dict[str, Any] = merged
    elif isinstance(prompt, str):
        data = {"text_input": prompt, **fields}
    else:
        raise errors.RequestValidationError(
            f"the prompt must be a str or a GenerateRequest, not {type(prompt).__name__}", field="text_input"
        )
    data = {key: value for key, value in data.items() if value is not None}
    try:
        return GenerateRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> errors.RequestValidationError:
    """Turn pydantic's report into one readable line naming the field."""
    details = exc.errors()
    first = details[0]
    loc = first.get("loc", ())
    field = str(loc[0]) if loc else None
    if field is None:  # a whole-request check names its field in quotes or first
        named = re.match(r"(?:Value error, )?(?:extra input )?'?(\w+)'?", str(first.get("msg", "")))
        field = named.group(1) if named else None
    where = field or ""
    for part in loc[1:]:
        if isinstance(part, int):
            where += f"[{part}]"  # list positions; union branch tags ('str', 'list[str]') are left out
    messages: list[str] = []
    for detail in details:
        if detail.get("loc", ())[:1] == loc[:1]:
            text = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
            if text not in messages:
                messages.append(text)
    got = first.get("input")
    shown = "" if first.get("type") in ("missing", "value_error") else f" (got {got!r:.60})"
    prefix = f"{where}: " if where else ""
    return errors.RequestValidationError(
        f"invalid request: {prefix}{' or '.join(messages)}{shown}", field=field
    )


_DATATYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "BYTES": (str,),
    "BOOL": (bool,),
    "FP16": (int, float),
    "FP32": (int, float),
    "FP64": (int, float),
    "BF16": (int, float),
}


@dataclass(frozen=True)
class ModelInputs(Mapping[str, str]):
    """The inputs a model accepts, read from its metadata: a mapping of input name -> datatype.

    ``supports("min_tokens")`` also answers for the older spelling; ``resolve()`` gives the name to
    send. ``text_mode`` says whether streamed ``text_output`` is a delta or cumulative text.
    """

    model: str
    datatypes: dict[str, str]
    platform: str = ""
    outputs: tuple[str, ...] = ()
    text_mode: TextMode = "delta"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _names: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], text_mode: TextMode = "delta") -> ModelInputs:
        """Build from the JSON of ``GET /v2/models/{model}``."""
        inputs = metadata.get("inputs") or []
        datatypes = {str(item["name"]): str(item.get("datatype", "")) for item in inputs if "name" in item}
        shapes = {
            str(item["name"]): tuple(int(dim) for dim in item.get("shape") or ())
            for item in inputs
            if "name" in item
        }
        outputs = tuple(str(item["name"]) for item in metadata.get("outputs") or [] if "name" in item)
        return cls(
            model=str(metadata.get("name", "")),
            datatypes=datatypes,
            platform=str(metadata.get("platform", "")),
            outputs=outputs,
            text_mode=text_mode,
            shapes=shapes,
            _names=tuple(sorted(datatypes)),
        )

    def __repr__(self) -> str:
        return f"ModelInputs(model={self.model!r}, inputs={list(self)}, text_mode={self.text_mode!r})"

    def __getitem__(self, name: str) -> str:
        return self.datatypes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names or sorted(self.datatypes))

    def __len__(self) -> int:
        return len(self.datatypes)

    def resolve(self, name: str) -> str | None:
        """The name this model uses for a logical input, or None when it has none."""
        if name in self.datatypes:
            return name
        for candidate in INPUT_ALIASES.get(name, ()):
            if candidate in self.datatypes:
                return candidate
        return None

    def supports(self, name: str) -> bool:
        """Whether the model accepts this input under any of its spellings."""
        return self.resolve(name) is not None


def build_body(
    request: GenerateRequest, inputs: ModelInputs | None, *, stream: bool | None = None
) -> dict[str, Any]:
    """The JSON object to POST: inputs under the names ``inputs`` accepts, plus id and parameters.

    With ``inputs`` None (metadata checks off) names are sent as given. ``stream`` fills the
    ``stream`` input when the request leaves it unset and the model has one.
    """
    body: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in request.input_values().items():
        target = name
        if inputs is not None:
            resolved = inputs.resolve(name)
            if resolved is None:
                raise errors.UnsupportedInputError(name, inputs.model or "?", list(inputs))
            target = resolved
            _check_datatype(name, value, inputs.datatypes[target])
        if target in body:
            raise errors.RequestValidationError(
                f"input {target!r} given twice (as {origin[target]!r} and {name!r})", field=name
            )
        body[target] = value
        origin[target] = name
    if stream is not None and "stream" not in body and (inputs is None or "stream" in inputs.datatypes):
        body["stream"] = stream
    if request.id is not None:
        body["id"] = request.id
    if request.parameters:
        for key in request.parameters:
            if key in body:
                raise errors.RequestValidationError(
                    f"{key!r} is both an input and a request parameter; Triton rejects duplicates",
                    field=f"parameters.{key}",
                )
        body["parameters"] = dict(request.parameters)
    return body


def _check_datatype(name: str, value: Any, datatype: str) -> None:
    """Reject values Triton would fail to parse (it answers 500 "Unable to parse 'data'")."""
    items = value if isinstance(value, list) else [value]
    expected = _DATATYPE_CHECKS.get(datatype)
    if expected is None and datatype.startswith(("INT", "UINT")):
        ok = all(isinstance(item, int) and not isinstance(item, bool) for item in items)
    elif expected is None:
        return
    elif bool not in expected:
        ok = all(isinstance(item, expected) and not isinstance(item, bool) for item in items)
    else:
        ok = all(isinstance(item, expected) for item in items)
    if not ok:
        raise errors.RequestValidationError(
            f"input {name!r} is {datatype} on this model; {value!r:.60} does not fit", field=name
        )


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


#: Headers of every JSON request the HTTP transports send.
JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


def text_mode_from_config(config: Mapping[str, Any]) -> TextMode:
    """Cumulative for a BLS model configured with ``accumulate_tokens`` true, delta otherwise.

    The ensemble streams each event's new tokens; ``tensorrt_llm_bls`` with accumulate_tokens
    decodes everything so far into every event (``triton-protocol.md`` §2.5).
    """
    parameters = config.get("parameters") or {}
    entry = parameters.get("accumulate_tokens") if isinstance(parameters, Mapping) else None
    if isinstance(entry, Mapping):
        value = str(entry.get("string_value", "")).strip().lower()
        if value in ("true", "1", "yes"):
            return "cumulative"
    return "delta"


# --- responses and errors -----------------------------------------------------------------------


def parse_json(body: bytes | str, *, url: str = "", what: str = "response body") -> Any:
    """Parse JSON or raise :class:`~trtclient.errors.InvalidJSONError` quoting the start of it."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        preview = body[:120] if isinstance(body, bytes | str) else b""
        raise errors.InvalidJSONError(
            f"the server sent a {what} that is not valid JSON: {preview!r}", url=url
        ) from None


def json_object(data: Any, *, url: str = "") -> dict[str, Any]:
    """``data`` if it is a JSON object, else :class:`~trtclient.errors.InvalidJSONError`."""
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    return data


def repository_list(data: Any, *, url: str = "") -> list[dict[str, Any]]:
    """A repository index (a JSON list), else :class:`~trtclient.errors.InvalidJSONError`."""
    if not isinstance(data, list):
        raise errors.InvalidJSONError("the repository index is not a JSON list", url=url)
    return data


def error_message(body: bytes, content_type: str = "") -> str:
    """Triton's error text from an error body: ``{"error": ...}`` as JSON or as one SSE event."""
    text = body.strip()
    if text.startswith(b"data:"):
        text = text[5:].split(b"\n", 1)[0].strip()
    if text.startswith(b"{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
    decoded = text.decode("utf-8", "replace")
    return decoded[:500] if decoded else "(empty body)"


_STATUS_CLASSES: dict[int, type[errors.TritonStatusError]] = {
    400: errors.BadRequestError,
    401: errors.AccessDeniedError,
    403: errors.AccessDeniedError,
    404: errors.NotFoundError,
    500: errors.InternalServerError,
    501: errors.NotSupportedError,
    503: errors.ServiceUnavailableError,
}


def status_error(
    status: int, message: str, *, url: str = "", retry_after: float | None = None
) -> errors.TritonStatusError:
    """The exception for an error status (Triton's mapping: ``triton-protocol.md`` §1.4)."""
    cls = _STATUS_CLASSES.get(status, errors.TritonStatusError)
    if cls is errors.AccessDeniedError and "header" not in message:
        message += " (pass the header the server expects with headers=...)"
    return cls(message, status_code=status, url=_shown_url(url), retry_after=retry_after)


def response_error(
    status: int, body: bytes, *, url: str = "", retry_after: str | None = None
) -> errors.TritonStatusError:
    """The exception for an HTTP error answer: its status, the message in its body, and its
    ``Retry-After`` header (``retry_after``, as sent)."""
    return status_error(status, error_message(body), url=url, retry_after=parse_retry_after(retry_after))


def status_error_class(status: int) -> type[errors.TritonStatusError]:
    """The exception class for an error status."""
    return _STATUS_CLASSES.get(status, errors.TritonStatusError)


def _shown_url(url: str) -> str:
    """The URL as shown in messages (credentials removed)."""
    return redact_url(url) if url else url


def parse_generate_body(body: bytes, *, url: str = "") -> GenerateResponse:
    """Parse a 200 ``/generate`` body; an ``{"error": ...}`` body raises ErrorBodyError."""
    if not body.strip():
        raise errors.InvalidJSONError("the server answered 200 with an empty body", url=url)
    data = parse_json(body, url=url)
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    if "error" in data:
        raise errors.ErrorBodyError(str(data["error"]), url=url)
    try:
        return GenerateResponse.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidJSONError(
            f"unexpected response fields: {exc.errors()[0]['msg']}", url=url
        ) from None


class StreamState:
    """Bookkeeping of one streamed response: event count, errors, and deltas of the text.

    ``cumulative`` streams (BLS with accumulate_tokens) repeat the whole text so far in each event;
    they are turned into deltas per sequence_index so ``chunk.text`` always means "text added".
    """

    __slots__ = ("_full", "_parts", "count", "cumulative", "first_arrival_ns", "last_arrival_ns", "url")

    def __init__(self, text_mode: TextMode = "delta", url: str = "") -> None:
        self.cumulative = text_mode == "cumulative"
        self.count = 0
        self.first_arrival_ns = 0
        self.last_arrival_ns = 0
        self.url = url
        self._parts: dict[int, list[str]] = {}
        self._full: dict[int, str] = {}

    def chunk_from_event(self, event: SSEEvent) -> StreamChunk:
        """Parse one SSE event into a chunk, or raise for an error event / invalid JSON."""
        try:
            data = json.loads(event.data)
        except (ValueError, UnicodeDecodeError):
            raise errors.InvalidJSONError(
                f"event {self.count} of the stream is not valid JSON: {event.data[:120]!r}",
                url=self.url,
                events_received=self.count,
            ) from None
        if type(data) is not dict:
            raise errors.InvalidJSONError(
                f"event {self.count} of the stream is not a JSON object: {event.data[:120]!r}",
                url=self.url,
                events_received=self.count,
            )
        return self.chunk_from_data(data, event.data, event.arrival_ns)

    def chunk_from_data(self, data: dict[str, Any], raw: bytes | None, arrival_ns: int) -> StreamChunk:
        """Turn one response's fields into a chunk (shared by HTTP and gRPC)."""
        if "error" in data:
            raise errors.TritonStreamError(str(data["error"]), url=self.url, events_received=self.count)
        value = data.get("text_output")
        if value.__class__ is not str:
            value = (value[0] if value else "") if isinstance(value, list) else ""
        key = data.get("sequence_index", 0)
        if key.__class__ is not int:
            key = 0
        if self.cumulative:
            text = self._delta_of_cumulative(key, value)
        else:
            text = value
            parts = self._parts.get(key)
            if parts is None:
                self._parts[key] = [value]
            else:
                parts.append(value)
        chunk = StreamChunk(text, data, raw, arrival_ns, self.count)
        if not self.count:
            self.first_arrival_ns = arrival_ns
        self.last_arrival_ns = arrival_ns
        self.count += 1
        return chunk

    def _delta_of_cumulative(self, key: int, full: str) -> str:
        previous = self._full.get(key, "")
        self._full[key] = full
        if full.startswith(previous):
            return full[len(previous) :]
        common = 0
        for a, b in zip(previous, full, strict=False):
            if a != b:
                break
            common += 1
        return full[common:]

    def finish(self, leftover: bytes = b"") -> None:
        """End of stream: a truncated event or no event at all is an error."""
        if leftover:
            raise errors.MalformedStreamError(
                f"the stream ended in the middle of an event: {leftover[:120]!r}",
                url=self.url,
                events_received=self.count,
            )
        if self.count == 0:
            raise errors.EmptyStreamError(
                "the server answered 200 but the stream ended without a single event; Triton does "
                "this when a required input (text_input, max_tokens) is missing and an optional "
                "one makes up the input count",
                url=self.url,
            )

    def text(self, sequence_index: int = 0) -> str:
        """The full text of one sequence so far."""
        if self.cumulative:
            return self._full.get(sequence_index, "")
        return "".join(self._parts.get(sequence_index, ()))

    def sequences(self) -> list[int]:
        """The sequence indexes seen so far, in order."""
        return sorted(self._full if self.cumulative else self._parts)


def chunks_from_events(
    state: StreamState, events: list[SSEEvent]
) -> tuple[list[StreamChunk], errors.TritonError | None]:
    """The chunks of the events one read completed, and the error to raise on the next read.

    An event that fails after good ones leaves them to be delivered first; one that fails first raises.
    """
    chunks: list[StreamChunk] = []
    chunk_from_event = state.chunk_from_event
    for event in events:
        try:
            chunks.append(chunk_from_event(event))
        except errors.TritonError as exc:
            if not chunks:
                raise
            return chunks, exc
    return chunks, None


# --- failure kinds and retries ------------------------------------------------------------------


QUEUE_FULL_MESSAGE = "Exceeds maximum queue size"
"""Triton's words for a full scheduler queue: 503 from a model called directly, but 400 (in an SSE body)
through an ensemble, so the status alone does not say it."""


def error_kind(exc: BaseException) -> str:
    """A short, stable name of a failure's kind, for load-test records (see ERROR_KINDS)."""
    if isinstance(exc, errors.TritonStatusError):
        if QUEUE_FULL_MESSAGE in exc.message:
            return "queue_full"
        if exc.grpc_code:
            return f"grpc_{exc.grpc_code.lower()}"
        return f"http_{exc.status_code}"
    if isinstance(exc, errors.TritonTimeoutError):
        return f"timeout_{exc.phase}"
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "other"


_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (errors.UnsupportedInputError, "unsupported_input"),
    (errors.RequestValidationError, "invalid_request"),
    (errors.TritonConnectionError, "connect"),
    (errors.TritonDisconnectedError, "disconnect"),
    (errors.TritonTransportError, "transport"),
    (errors.TritonStreamError, "stream_error"),
    (errors.ErrorBodyError, "error_body"),
    (errors.EmptyStreamError, "empty_stream"),
    (errors.InvalidJSONError, "invalid_json"),
    (errors.MalformedStreamError, "malformed_sse"),
    (errors.LauncherError, "launcher"),
    (asyncio.CancelledError, "cancelled"),
    (KeyboardInterrupt, "cancelled"),
    (TimeoutError, "timeout_total"),
)


@dataclass(frozen=True)
class RetryPolicy:
    """Opt-in retries of connection failures and 503 answers that arrived before any event."""

    max_retries: int = 0
    initial_delay: float = RETRY_INITIAL_DELAY
    max_delay: float = RETRY_MAX_DELAY
    jitter: float = RETRY_JITTER

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise errors.RequestValidationError(
                f"max_retries must be an int >= 0, not {self.max_retries!r}", field="max_retries"
            )


def should_retry(exc: BaseException, *, events_received: int = 0) -> bool:
    """Whether a failed attempt may be retried: nothing was streamed yet, and the failure is a
    connection failure (incl. connect timeout) or a 503. Reads that timed out, disconnects after
    sending and every other status are final: the server may already have done the work."""
    if events_received:
        return False
    if isinstance(exc, errors.TritonConnectionError | errors.ConnectTimeoutError):
        return True
    return isinstance(exc, errors.ServiceUnavailableError) and exc.grpc_code is None


def retry_delay(attempt: int, policy: RetryPolicy, *, rand: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): capped exponential backoff with jitter.

    ``rand`` in [0, 1) takes up to ``policy.jitter`` off the delay; a server's Retry-After (seconds)
    is honoured up to ``policy.max_delay``.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, policy.max_delay)
    base = min(policy.max_delay, policy.initial_delay * (2.0**attempt))
    return base * (1.0 - policy.jitter * rand)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as a number; None otherwise."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
