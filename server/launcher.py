"""The launcher's public names in one place.

:class:`TritonProcess` (``process``) starts, watches and stops one ``tritonserver`` process group;
:class:`ServerLifecycle` (``lifecycle``) is what every launcher shares once started; :class:`EmbeddedTriton`
(``embedded``) runs the embedded default, or a user's own model repository with the CPU engine standing in
for its ``tensorrt_llm`` model.
"""

from __future__ import annotations

from trtclient.server.embedded import EmbeddedTriton
from trtclient.server.lifecycle import ServerLifecycle
from trtclient.server.process import (
    EMBEDDED_MODELS,
    SHM_DIR,
    ServerHandle,
    TritonProcess,
    ensure_port_free,
    exposure_warning,
    free_port,
    is_loopback,
    is_wildcard,
    local_host,
    reachable_hosts,
    url_host,
)

__all__ = [
    "EMBEDDED_MODELS",
    "SHM_DIR",
    "EmbeddedTriton",
    "ServerHandle",
    "ServerLifecycle",
    "TritonProcess",
    "ensure_port_free",
    "exposure_warning",
    "free_port",
    "is_loopback",
    "is_wildcard",
    "local_host",
    "reachable_hosts",
    "url_host",
]
