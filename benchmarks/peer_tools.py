"""Installing the peers (GenAI-Perf with perf_analyzer, AIPerf) into a cached venv, and reading their exports.

The venv lives under ``$TRTCLIENT_CACHE_DIR`` (default ``~/.cache/trtclient``) in a folder named after the
pinned versions, so a version change installs afresh and a second run installs nothing.

perf_analyzer comes with the ``tritonclient==2.51.0`` manylinux wheel (``bin/perf_analyzer``); it links
``libcudart.so.12`` and ``libb64.so.0d``, which the ``nvidia-pytriton`` wheel carries in its
``nvidia_pytriton.libs`` folder under auditwheel-mangled names (``libb64-<hash>.so.0d``,
``libcudart-<hash>.so.12.<minor>``). :func:`link_libraries` makes a folder of symlinks under the plain
names, for ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENAI_PERF = "genai-perf==0.0.16"
AIPERF = "aiperf==0.13.0"
TRITONCLIENT = "tritonclient==2.51.0"
PYTRITON = "nvidia-pytriton==0.7.0"
PACKAGES = (GENAI_PERF, AIPERF, TRITONCLIENT, PYTRITON)
#: Plain library name -> pattern of its mangled name in ``nvidia_pytriton.libs``.
LIBRARIES = {
    "libb64.so.0d": r"libb64-[0-9a-f]+\.so\.0d$",
    "libcudart.so.12": r"libcudart-[0-9a-f]+\.so\.12(\.|$)",
}


class InstallError(RuntimeError):
    """The peers could not be installed; the message says which step failed and what to try."""


def cache_dir() -> Path:
    """``$TRTCLIENT_CACHE_DIR`` or ``~/.cache/trtclient``."""
    return Path(os.environ.get("TRTCLIENT_CACHE_DIR") or Path.home() / ".cache" / "trtclient")


def venv_dir() -> Path:
    """The peers' venv, keyed by the pinned versions."""
    key = "-".join(p.replace("==", "") for p in (GENAI_PERF, AIPERF, TRITONCLIENT))
    return cache_dir() / f"peers-py{sys.version_info.major}.{sys.version_info.minor}-{key}"


def _run_step(what: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise InstallError(
            f"installing the peers failed while {what} (exit {done.returncode}):\n{tail}\n"
            f"command: {' '.join(command)}\n"
            "The peers come from the package registry (pip's configured index); check that it is reachable, "
            f"or remove {venv_dir()} and retry."
        )


def link_libraries(libs_dir: Path, into: Path) -> Path:
    """Symlink the mangled libraries of ``libs_dir`` under their plain names in ``into``; return ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in libs_dir.iterdir()) if libs_dir.is_dir() else []
    for plain, pattern in LIBRARIES.items():
        found = [n for n in names if re.match(pattern, n)]
        if not found:
            raise InstallError(f"{plain}: no file matching {pattern} in {libs_dir} (perf_analyzer needs it)")
        link = into / plain
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(libs_dir / found[0])
    return into


@dataclass(frozen=True)
class Peers:
    """The installed peers: their commands and the environment they run with."""

    bin_dir: Path
    lib_dir: Path

    def env(self) -> dict[str, str]:
        """The peers' environment: their bin first on PATH, the linked libraries."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = f"{self.lib_dir}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}".rstrip(
            os.pathsep
        )
        # Not HF_HUB_OFFLINE: AIPerf 0.13 then treats a tokenizer directory as a repository id and fails.
        # A directory given as --tokenizer is read from disk either way.
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            env.pop(name, None)
        return env


def ensure_peers() -> Peers:
    """Install the peers into the cached venv on first use (a few minutes); later calls only check it."""
    venv = venv_dir()
    stamp = venv / ".installed"
    bin_dir = venv / "bin"
    if not stamp.exists():
        print(f"installing {', '.join(PACKAGES)} into {venv} (first use only)", flush=True)
        _run_step("creating the venv", [sys.executable, "-m", "venv", "--clear", str(venv)])
        _run_step("running pip", [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *PACKAGES])
    site = next((venv / "lib").glob("python3*/site-packages"), None)
    if site is None:
        raise InstallError(f"{venv}: no site-packages; remove the folder and retry")
    lib_dir = link_libraries(site / "nvidia_pytriton.libs", venv / "linked-libs")
    peers = Peers(bin_dir, lib_dir)
    for tool in ("genai-perf", "perf_analyzer", "aiperf"):
        if not (bin_dir / tool).exists():
            raise InstallError(f"{bin_dir / tool}: missing after install; remove {venv} and retry")
    check = subprocess.run(
        [str(bin_dir / "perf_analyzer"), "--version"],
        capture_output=True,
        text=True,
        env=peers.env(),
        check=False,
    )
    if check.returncode != 0:
        raise InstallError(
            f"perf_analyzer does not start (exit {check.returncode}): "
            f"{(check.stderr or check.stdout).strip()[-400:]}"
        )
    stamp.touch()
    return peers


# --- reading the exports ------------------------------------------------------------------------------------

#: Time units of the peers' per-metric objects, to milliseconds.
_TO_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "ns": 1e-6}


@dataclass(frozen=True)
class Agreement:
    """One tool's figures for the side-by-side table (milliseconds; ``None`` where the tool has none)."""

    tool: str
    requests: int | None
    ttft_p50: float | None
    ttft_p99: float | None
    tpot_p50: float | None
    tpot_p99: float | None
    itl_p50: float | None
    itl_p99: float | None


def _stat_ms(data: Mapping[str, Any], metric: str, statistic: str) -> float | None:
    block = data.get(metric)
    if not isinstance(block, Mapping) or block.get(statistic) is None:
        return None
    return float(block[statistic]) * _TO_MS.get(str(block.get("unit", "ms")), 1.0)


def _count(data: Mapping[str, Any]) -> int | None:
    block = data.get("request_count")
    if isinstance(block, Mapping) and block.get("avg") is not None:
        return int(block["avg"])
    return None


def peer_agreement(tool: str, data: Mapping[str, Any]) -> Agreement:
    """A GenAI-Perf or AIPerf summary export under our names.

    Both call (e2e − ttft) / (tokens − 1) ``inter_token_latency``: that is our TPOT. AIPerf's
    ``inter_chunk_latency`` (gaps between consecutive responses) is our ITL; GenAI-Perf exports none.
    """
    return Agreement(
        tool,
        _count(data),
        _stat_ms(data, "time_to_first_token", "p50"),
        _stat_ms(data, "time_to_first_token", "p99"),
        _stat_ms(data, "inter_token_latency", "p50"),
        _stat_ms(data, "inter_token_latency", "p99"),
        _stat_ms(data, "inter_chunk_latency", "p50"),
        _stat_ms(data, "inter_chunk_latency", "p99"),
    )


def bench_agreement(tool: str, summary: Mapping[str, Any]) -> Agreement:
    """A ``trtclient bench --json`` summary (schema ``trtclient.bench/1``) under the same columns."""

    def stat(metric: str, statistic: str) -> float | None:
        block = summary.get(f"{metric}_ms")
        return (
            float(block[statistic])
            if isinstance(block, Mapping) and block.get(statistic) is not None
            else None
        )

    requests = summary.get("requests", {})
    return Agreement(
        tool,
        int(requests["ok"]) if isinstance(requests, Mapping) and "ok" in requests else None,
        stat("ttft", "p50"),
        stat("ttft", "p99"),
        stat("tpot", "p50"),
        stat("tpot", "p99"),
        stat("itl", "p50"),
        stat("itl", "p99"),
    )


def read_export(tool: str, path: Path) -> Agreement:
    """Read one tool's summary file: ``trtclient`` (bench JSON), ``genai-perf`` or ``aiperf``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: not a JSON object")
    return bench_agreement(tool, data) if tool == "trtclient" else peer_agreement(tool, data)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def agreement_table(rows: list[Agreement]) -> list[str]:
    """Lines of the side-by-side table: TTFT, TPOT and ITL p50/p99 of each tool (ms)."""
    header = ("tool", "requests", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p50", "ITL p99")
    cells = [header] + [
        (
            r.tool,
            "-" if r.requests is None else str(r.requests),
            *(_ms(v) for v in (r.ttft_p50, r.ttft_p99, r.tpot_p50, r.tpot_p99, r.itl_p50, r.itl_p99)),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
