"""Turn the models that failed to load, as ``tritonserver`` logs them, into one message saying what to do.

Triton logs each failure as one line, ``failed to load 'MODEL' version N: REASON``, where the python backend
puts the exception and its ``At:`` frames (innermost first) into REASON with escaped line breaks.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["explain_load_failure"]

_FAILED = re.compile(r"failed to load '(?P<model>[^']+)' version \d+: (?P<reason>[^\n]*)")
_NO_MODULE = re.compile(r"No module named '(?P<module>[^']+)'")
_FRAME = re.compile(r"/(?P<model>[^/\\]+)/(?P<file>\d+/[^\\(]+\.py)\((?P<line>\d+)\)")


def explain_load_failure(log_text: str, template_dir: Path, requirements: Path | None) -> str | None:
    """One message naming each model that failed to load, its file and the cause; None if the log has none."""
    causes: dict[str, str] = {}
    missing: list[str] = []
    for match in _FAILED.finditer(log_text):
        model = match.group("model")
        if model in causes:
            continue
        reason = match.group("reason")
        where = _source(reason, model, template_dir)
        summary = reason.split("\\n")[0].removeprefix("Internal: ").strip().strip('"')
        module = _NO_MODULE.search(summary)
        if module is not None:
            package = module.group("module").split(".")[0]
            missing.append(package)
            causes[model] = f"model {model!r} failed to import the package {package!r} ({where})"
        else:
            causes[model] = f"model {model!r} failed to load ({where}): {summary}"
    if not causes:
        return None
    message = "; ".join(causes.values())
    if missing:
        packages = ", ".join(dict.fromkeys(missing))
        fix = (
            f"add {packages} to {requirements}"
            if requirements
            else f"list {packages} in a --requirements file"
        )
        message += f". The model environment lacks them: {fix} (pip requirements syntax)"
    return message


def _source(reason: str, model: str, template_dir: Path) -> str:
    """The innermost frame of the model's own files, as a path in the template folder, else its model.py."""
    for frame in _FRAME.finditer(reason):
        if frame.group("model") == model:
            return f"{template_dir / model / frame.group('file')}, line {frame.group('line')}"
    source = template_dir / model / "1" / "model.py"
    return str(source if source.is_file() else template_dir / model / "config.pbtxt")
