"""trtclient: client, load tests and launcher for TensorRT-LLM models behind NVIDIA Triton.

The public names below are imported on first use, so ``import trtclient`` (and the launcher under
``trtclient.server``) stays light; ``from trtclient import AsyncTritonClient`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trtclient._version import __version__

if TYPE_CHECKING:
    from trtclient.client import AsyncGenerateStream, AsyncTritonClient
    from trtclient.errors import (
        AccessDeniedError,
        BadRequestError,
        ConnectTimeoutError,
        EmptyStreamError,
        ErrorBodyError,
        InternalServerError,
        InvalidJSONError,
        LauncherError,
        MalformedStreamError,
        NotFoundError,
        NotSupportedError,
        PortInUseError,
        ReadTimeoutError,
        RequestValidationError,
        ServerStartError,
        ServerTimeoutError,
        ServiceUnavailableError,
        SetupError,
        TotalTimeoutError,
        TritonConnectionError,
        TritonDisconnectedError,
        TritonError,
        TritonResponseError,
        TritonStatusError,
        TritonStreamError,
        TritonTimeoutError,
        TritonTransportError,
        UnsupportedInputError,
        error_kind,
    )
    from trtclient.inputs import ModelInputs
    from trtclient.options import Timeout
    from trtclient.prometheus import Sample, parse_metrics
    from trtclient.retry import RetryPolicy
    from trtclient.schema import (
        GenerateRequest,
        GenerateResponse,
        ModelMetadata,
        ModelStats,
        RepositoryModel,
        ServerMetadata,
        StreamChunk,
        TensorMetadata,
    )
    from trtclient.sync_client import GenerateStream, TritonClient

__all__ = [
    "AccessDeniedError",
    "AsyncGenerateStream",
    "AsyncTritonClient",
    "BadRequestError",
    "ConnectTimeoutError",
    "EmptyStreamError",
    "ErrorBodyError",
    "GenerateRequest",
    "GenerateResponse",
    "GenerateStream",
    "InternalServerError",
    "InvalidJSONError",
    "LauncherError",
    "MalformedStreamError",
    "ModelInputs",
    "ModelMetadata",
    "ModelStats",
    "NotFoundError",
    "NotSupportedError",
    "PortInUseError",
    "ReadTimeoutError",
    "RepositoryModel",
    "RequestValidationError",
    "RetryPolicy",
    "Sample",
    "ServerMetadata",
    "ServerStartError",
    "ServerTimeoutError",
    "ServiceUnavailableError",
    "SetupError",
    "StreamChunk",
    "TensorMetadata",
    "Timeout",
    "TotalTimeoutError",
    "TritonClient",
    "TritonConnectionError",
    "TritonDisconnectedError",
    "TritonError",
    "TritonResponseError",
    "TritonStatusError",
    "TritonStreamError",
    "TritonTimeoutError",
    "TritonTransportError",
    "UnsupportedInputError",
    "__version__",
    "error_kind",
    "parse_metrics",
]

_EXPORTS: dict[str, str] = {
    "AccessDeniedError": "trtclient.errors",
    "AsyncGenerateStream": "trtclient.client",
    "AsyncTritonClient": "trtclient.client",
    "BadRequestError": "trtclient.errors",
    "ConnectTimeoutError": "trtclient.errors",
    "EmptyStreamError": "trtclient.errors",
    "ErrorBodyError": "trtclient.errors",
    "GenerateRequest": "trtclient.schema",
    "GenerateResponse": "trtclient.schema",
    "GenerateStream": "trtclient.sync_client",
    "InternalServerError": "trtclient.errors",
    "InvalidJSONError": "trtclient.errors",
    "LauncherError": "trtclient.errors",
    "MalformedStreamError": "trtclient.errors",
    "ModelInputs": "trtclient.inputs",
    "ModelMetadata": "trtclient.schema",
    "ModelStats": "trtclient.schema",
    "NotFoundError": "trtclient.errors",
    "NotSupportedError": "trtclient.errors",
    "PortInUseError": "trtclient.errors",
    "ReadTimeoutError": "trtclient.errors",
    "RepositoryModel": "trtclient.schema",
    "RequestValidationError": "trtclient.errors",
    "RetryPolicy": "trtclient.retry",
    "Sample": "trtclient.prometheus",
    "ServerMetadata": "trtclient.schema",
    "ServerStartError": "trtclient.errors",
    "ServerTimeoutError": "trtclient.errors",
    "ServiceUnavailableError": "trtclient.errors",
    "SetupError": "trtclient.errors",
    "StreamChunk": "trtclient.schema",
    "TensorMetadata": "trtclient.schema",
    "Timeout": "trtclient.options",
    "TotalTimeoutError": "trtclient.errors",
    "TritonClient": "trtclient.sync_client",
    "TritonConnectionError": "trtclient.errors",
    "TritonDisconnectedError": "trtclient.errors",
    "TritonError": "trtclient.errors",
    "TritonResponseError": "trtclient.errors",
    "TritonStatusError": "trtclient.errors",
    "TritonStreamError": "trtclient.errors",
    "TritonTimeoutError": "trtclient.errors",
    "TritonTransportError": "trtclient.errors",
    "UnsupportedInputError": "trtclient.errors",
    "error_kind": "trtclient.errors",
    "parse_metrics": "trtclient.prometheus",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trtclient' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
