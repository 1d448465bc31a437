"""trtclient: client, load tests and launcher for TensorRT-LLM models behind NVIDIA Triton."""

from __future__ import annotations

from trtclient._version import __version__

__all__ = ["__version__"]
