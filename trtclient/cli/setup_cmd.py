"""``trtclient setup``: prepare the embedded server once (server binary, model environment, tokenizer)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``setup`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "setup",
        help="prepare the embedded Triton server (cached, built once per machine)",
        description=__doc__,
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build what is missing and say where everything is."""
    from trtclient.server.paths import cache_dir
    from trtclient.server.tokenizer import default_tokenizer_dir
    from trtclient.server.toolchain import prepare

    started = time.monotonic()
    toolchain = prepare(lambda message: print(message, file=sys.stderr, flush=True))
    tokenizer = default_tokenizer_dir()
    print(f"embedded Triton ready to start ({time.monotonic() - started:.1f} s)")
    print(f"  tritonserver  {toolchain.tritonserver} ({toolchain.server_version})")
    print(f"  model env     {toolchain.model_env}")
    print(f"  tokenizer     {tokenizer}")
    print(f"  cache         {cache_dir()}")
    return 0
