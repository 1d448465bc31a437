"""Server addresses and API paths: canonical URLs, credentials taken out of them, model and
metrics paths. Pure string work (``triton-protocol.md`` §1)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from trtclient import errors
from trtclient.constants import (
    DEFAULT_GRPC_PORT,
    DEFAULT_METRICS_PORT,
)

__all__ = [
    "is_loopback",
    "metrics_url_for",
    "model_path",
    "move_credentials",
    "normalize_url",
    "redact_url",
    "stats_path",
    "url_is_loopback",
    "version_param",
]


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


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (a host name or address, without brackets)."""
    return host in ("localhost", "::1") or host.startswith("127.")


def url_is_loopback(url: str) -> bool:
    """Whether a server URL (``host:port`` allowed) points at this machine."""
    return is_loopback(urlsplit(url if "://" in url else f"http://{url}").hostname or "")
