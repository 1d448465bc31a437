"""Where the launcher keeps what it builds, and where the bundled assets are."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trtclient.errors import SetupError

__all__ = ["ASSETS_DIR", "CORPUS_DIR", "TEMPLATES_DIR", "cache_dir"]

ASSETS_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = ASSETS_DIR / "model_repository"
CORPUS_DIR = ASSETS_DIR / "corpus"

CACHE_ENV = "TRTCLIENT_CACHE_DIR"


def cache_dir(*, create: bool = True) -> Path:
    """The cache: ``$TRTCLIENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/trtclient``, else ``~/.cache/trtclient``.

    Raises ``SetupError`` when it cannot be created or written.
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        path = Path(configured).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "trtclient"
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            # A probe of its own per process: several processes may check the same cache at once.
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise SetupError(
                f"cache directory {path} is not writable ({exc.strerror or exc}); "
                f"set {CACHE_ENV} to a writable directory"
            ) from exc
    return path
