"""Default numbers of the client: ports, timeouts, retry policy, pool size.

Every figure a user may want to change is a constructor argument; these are only the defaults.
"""

from __future__ import annotations

from trtclient._version import __version__

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_RETRIES",
    "CLI_MAX_TOKENS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_MODEL",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "READ_CHUNK_SIZE",
    "RETRY_INITIAL_DELAY",
    "RETRY_JITTER",
    "RETRY_MAX_DELAY",
    "USER_AGENT",
]

#: Triton's default ports (server ``src/command_line_parser.cc``).
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002

#: The TRT-LLM backend's entry model (``all_models/inflight_batcher_llm/ensemble``).
DEFAULT_MODEL = "ensemble"

#: Output length when the caller gives none (the same default as OpenAI's completions API).
DEFAULT_MAX_TOKENS = 16
#: The command-line tools' output length when none is given (``generate``, ``bench``, the Locust
#: scenarios): the TensorRT-LLM tutorials' ``max_tokens``.
CLI_MAX_TOKENS = 20

#: Seconds to establish a connection (TCP + TLS).
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds without a single byte from the server before a request fails. Generous: a queued
#: request sees no byte until the engine schedules it.
DEFAULT_READ_TIMEOUT = 300.0
#: Seconds for a whole request, stream included; ``None`` means no limit.
DEFAULT_TOTAL_TIMEOUT: float | None = None

#: Connections one client may hold open at once. High on purpose: a streaming load test keeps one
#: connection per stream, and aiohttp's default (100) or httpx's (100) would queue the rest.
DEFAULT_CONNECTIONS = 4096

#: Retries are off by default: a retried generate call hides a failure and inflates latency.
DEFAULT_MAX_RETRIES = 0
#: Backoff before retry n (0-based): min(RETRY_MAX_DELAY, RETRY_INITIAL_DELAY * 2**n), then
#: reduced by a random fraction up to RETRY_JITTER.
RETRY_INITIAL_DELAY = 0.5
RETRY_MAX_DELAY = 8.0
RETRY_JITTER = 0.25

#: Largest read the sync client asks the socket for at once.
READ_CHUNK_SIZE = 65536

USER_AGENT = f"trtclient/{__version__}"
