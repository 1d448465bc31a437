"""Turn the models that failed to load, as ``tritonserver`` logs them, into one message saying what to do."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["explain_load_failure"]

_FAILED = re.compile(r"failed to load '(?P<model>[^']+)' version \d+: (?P<reason>[^\n]*)")
_NO_MODULE = re.compile(r"No module named '(?P<module>[^']+)'")


def explain_load_failure(log_text: str, template_dir: Path, requirements: Path | None) -> str | None:
    """One message naming each model that failed to load, its file and the cause; None if the log has none."""
    causes: dict[str, str] = {}
    missing: list[str] = []
    for match in _FAILED.finditer(log_text):
        model = match.group("model")
        if model in causes:
            continue
        reason = match.group("reason").strip().rstrip('"').strip()
        # the python backend puts the exception's traceback on the lines after the reason
        following = log_text[match.end() : match.end() + 2000]
        module = _NO_MODULE.search(reason) or _NO_MODULE.search(following)
        source = template_dir / model / "1" / "model.py"
        where = source if source.is_file() else template_dir / model / "config.pbtxt"
        if module is not None:
            package = module.group("module").split(".")[0]
            missing.append(package)
            causes[model] = f"model {model!r} failed to import the package {package!r} ({where})"
        else:
            causes[model] = f"model {model!r} failed to load ({where}): {reason}"
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
