"""Per-client options: timeouts, TLS contexts, request headers and the headers of every JSON request."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trtclient import errors
from trtclient.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "JSON_HEADERS",
    "Timeout",
    "check_headers",
    "make_ssl_context",
    "safe_headers",
    "ssl_option",
]


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


#: Headers of every JSON request the HTTP transports send.
JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
