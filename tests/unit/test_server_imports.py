"""The server package stands on its own: nothing under server/ imports the command line, even lazily."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_server_module_imports_trtclient_cli() -> None:
    sources = [p for p in SERVER.rglob("*.py") if "model_repository" not in p.parts]
    assert len(sources) > 10
    offenders = {
        str(path.relative_to(SERVER)): sorted(
            name for name in imported_modules(path) if name.startswith("trtclient.cli")
        )
        for path in sources
    }
    assert {path: names for path, names in offenders.items() if names} == {}
