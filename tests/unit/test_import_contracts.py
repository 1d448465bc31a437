"""The import contracts in pyproject.toml (``lint-imports``, run by ``make lint``) hold for the tree, and
each one breaks when a violation is planted in a copy of it.

The copy (``trtclient`` with its ``server`` link followed, the Locust kit, the config) goes to a temporary
directory that comes first on ``PYTHONPATH``, so the checked tree is the planted one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: name -> (file to append to, the lines planted there, the contract that must break)
PLANTS: dict[str, tuple[str, str, str]] = {
    "library imports locust": (
        "trtclient/errors.py",
        "import locust  # planted\n",
        "the library never imports locust",
    ),
    "core imports a client, for typing only": (
        "trtclient/streaming.py",
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n    from trtclient.client import AsyncTritonClient\n",
        "trtclient floors",
    ),
    "a wire imports gevent": (
        "trtclient/transports/httpx_http.py",
        "import gevent  # planted\n",
        "only the socket transport imports gevent or geventhttpclient",
    ),
    "a lazy import closes a cycle in the Locust kit": (
        "locustfiles/trtlocust/_arrivals.py",
        "\n\ndef _planted() -> object:\n    from trtlocust._process import PROCESS\n\n    return PROCESS\n",
        "Locust kit floors",
    ),
}


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'locustfiles'}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def copy_tree(into: Path) -> Path:
    shutil.copytree(
        ROOT / "trtclient", into / "trtclient", symlinks=False, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "locustfiles" / "trtlocust", into / "locustfiles" / "trtlocust")
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, plant: str) -> None:
    tree = copy_tree(tmp_path)
    path, lines, contract = PLANTS[plant]
    with (tree / path).open("a", encoding="utf-8") as handle:
        handle.write(lines)
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout
