"""Our client beside GenAI-Perf (perf_analyzer) and AIPerf on one workload: latency agreement, CPU per event.

One embedded server (``orin-int4``, batch 64) serves every run. Each tool sends the same workload, one
after another and interleaved over ``PEERS_ROUNDS`` rounds (default 2; the order reverses each round):
300 streamed requests of 64 forced output tokens, 64 in flight, synthetic prompts of 32 tokens made with the
embedded tokenizer (given to every tool as ``--tokenizer DIR``, so nothing is downloaded).

* ``trtclient bench --url ... --concurrency 64 --requests 300 --input-tokens 32 --output-tokens 64``;
* ``genai-perf profile --endpoint-type generate --endpoint v2/models/ensemble/generate_stream --streaming``
  (its HTTP generate mode; the C++ perf_analyzer does the requests), ``min_length`` forced through
  ``--extra-inputs``;
* ``aiperf profile --endpoint-type template`` with a payload template file for ``generate_stream`` and
  ``response_field`` ``text_output``.

Printed: TTFT, TPOT and ITL p50/p99 of each tool side by side (GenAI-Perf's and AIPerf's "inter token
latency" is our TPOT; AIPerf's "inter chunk latency" is our ITL; GenAI-Perf has no per-gap figure), and each
tool's client CPU time per streamed event: CPU time (user + system) of the tool's whole process tree over
the run, start-up included, from ``wait4``'s resource usage, divided by the events it received (requests ×
64: the embedded server sends one token per event). A breakdown by process name (perf_analyzer alone,
for instance) comes from ``psutil`` samples every 0.1 s, so it misses the last tenth of a second.

On first use it installs the peers into a cached venv (``benchmarks/peer_tools.py``). Not part of
``make test`` nor of the default benchmark list. Run: ``python -m benchmarks peers``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from benchmarks.common import Row
from benchmarks.peer_tools import Agreement, InstallError, Peers, agreement_table, ensure_peers, read_export
from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.tokenizer import default_tokenizer_dir

REQUESTS = 300
CONCURRENCY = 64
OUTPUT_TOKENS = 64
INPUT_TOKENS = 32
PROFILE = "orin-int4"
TOOLS = ("trtclient", "genai-perf", "aiperf")
PAYLOAD_TEMPLATE = (
    '{"text_input": {{ text|tojson }}, "max_tokens": {{ max_tokens }}, '
    '"min_length": {{ max_tokens }}, "stream": true}\n'
)


@dataclass
class ToolRun:
    """One tool's run: where its summary is, and the CPU it used."""

    tool: str
    agreement: Agreement
    cpu_s: float
    wall_s: float
    cpu_by_name: dict[str, float] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return (self.agreement.requests or 0) * OUTPUT_TOKENS

    @property
    def us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else float("nan")


def _command(tool: str, url: str, tokenizer: Path, out: Path) -> tuple[list[str], Path]:
    """The command line for ``tool`` and the summary file it will write."""
    load = ["--concurrency", str(CONCURRENCY), "--request-count", str(REQUESTS)]
    synthetic = [
        "--synthetic-input-tokens-mean",
        str(INPUT_TOKENS),
        "--synthetic-input-tokens-stddev",
        "0",
        "--output-tokens-mean",
        str(OUTPUT_TOKENS),
        "--output-tokens-stddev",
        "0",
    ]
    if tool == "trtclient":
        summary = out / "bench.json"
        return [
            str(Path(sys.executable).parent / "trtclient"),
            "bench",
            "--url",
            url,
            "--concurrency",
            str(CONCURRENCY),
            "--requests",
            str(REQUESTS),
            "--output-tokens",
            str(OUTPUT_TOKENS),
            "--input-tokens",
            str(INPUT_TOKENS),
            "--tokenizer",
            str(tokenizer),
            "--no-progress",
            "--json",
            str(summary),
        ], summary
    if tool == "genai-perf":
        artifacts = out / "genai-perf"
        return [
            "genai-perf",
            "profile",
            "-m",
            "ensemble",
            "--endpoint-type",
            "generate",
            "--endpoint",
            "v2/models/ensemble/generate_stream",
            "--streaming",
            "-u",
            url,
            "--tokenizer",
            str(tokenizer),
            *synthetic,
            "--extra-inputs",
            f"min_length:{OUTPUT_TOKENS}",
            *load,
            "--num-dataset-entries",
            str(REQUESTS),
            "--warmup-request-count",
            "0",
            "--artifact-dir",
            str(artifacts),
        ], artifacts
    template = out / "payload.json.j2"
    template.write_text(PAYLOAD_TEMPLATE, encoding="utf-8")
    artifacts = out / "aiperf"
    return [
        "aiperf",
        "profile",
        "-m",
        "ensemble",
        "--endpoint-type",
        "template",
        "--custom-endpoint",
        "/v2/models/ensemble/generate_stream",
        "--streaming",
        "-u",
        url,
        "--extra-inputs",
        f"payload_template:{template}",
        "--extra-inputs",
        "response_field:text_output",
        "--tokenizer",
        str(tokenizer),
        *synthetic,
        *load,
        "--artifact-dir",
        str(artifacts),
        "--ui-type",
        "none",
    ], artifacts / "profile_export_aiperf.json"


def _sample(root: psutil.Process, seen: dict[int, tuple[str, float]]) -> None:
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = (proc.name(), times.user + times.system)
        except psutil.NoSuchProcess:
            continue


def run_tool(tool: str, url: str, tokenizer: Path, out: Path, peers: Peers) -> ToolRun:
    """Run one tool to completion; its summary, its process tree's CPU time and wall time."""
    out.mkdir(parents=True, exist_ok=True)
    command, summary = _command(tool, url, tokenizer, out)
    log = out / f"{tool}.log"
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=peers.env(), cwd=out)
        root = psutil.Process(proc.pid)
        seen: dict[int, tuple[str, float]] = {}
        while True:
            _sample(root, seen)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{tool} exited {proc.returncode}; last lines of {log}:\n{tail}")
    if summary.is_dir():  # GenAI-Perf names its folder after the model, endpoint and load
        found = sorted(summary.rglob("*_genai_perf.json"))
        if not found:
            raise RuntimeError(f"{tool}: no *_genai_perf.json under {summary}")
        summary = found[0]
    by_name: dict[str, float] = defaultdict(float)
    for name, cpu in seen.values():
        by_name[name] += cpu
    if tool == "trtclient":  # the bench's own figure: process CPU from the first send to the last response
        by_name["trtclient, during the run"] = float(json.loads(summary.read_text())["client"]["cpu_s"])
    return ToolRun(tool, read_export(tool, summary), usage.ru_utime + usage.ru_stime, wall, dict(by_name))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run() -> list[Row]:
    """Install the peers if needed, run the three tools interleaved, print agreement and CPU per event."""
    try:
        peers = ensure_peers()
    except InstallError as exc:
        print(f"peers: {exc}")
        raise SystemExit(1) from None
    rounds = int(os.environ.get("PEERS_ROUNDS", "2"))
    tokenizer = default_tokenizer_dir()
    runs: list[ToolRun] = []
    with (
        tempfile.TemporaryDirectory(prefix="trtclient-peers-") as tmp,
        EmbeddedTriton(profile=PROFILE, max_batch_size=CONCURRENCY) as server,
    ):
        print(
            f"workload: {REQUESTS} requests x {OUTPUT_TOKENS} tokens, {CONCURRENCY} in flight, "
            f"{INPUT_TOKENS}-token prompts; server {PROFILE} at {server.url}; {rounds} round(s)"
        )
        for n in range(rounds):
            order = TOOLS if n % 2 == 0 else tuple(reversed(TOOLS))
            for tool in order:
                result = run_tool(tool, server.url, tokenizer, Path(tmp) / f"round{n}", peers)
                runs.append(result)
                parts = ", ".join(
                    f"{k} {v:.2f}" for k, v in sorted(result.cpu_by_name.items(), key=lambda kv: -kv[1])
                )
                print(
                    f"round {n + 1} {tool:<10} wall {result.wall_s:5.1f} s  CPU {result.cpu_s:5.2f} s  "
                    f"{result.us_per_event:6.1f} us/event  ({parts})",
                    flush=True,
                )
    print(
        "\nlatency agreement, ms (TPOT = their 'inter token latency'; ITL = per gap, AIPerf's 'inter chunk "
        "latency'):"
    )
    labelled = [replace(r.agreement, tool=f"{r.tool} r{n // len(TOOLS) + 1}") for n, r in enumerate(runs)]
    for line in agreement_table(labelled):
        print(f"  {line}")
    rows: list[Row] = []
    print("\nclient CPU per event (whole process tree, start-up included; median over rounds):")
    for tool in TOOLS:
        mine = [r for r in runs if r.tool == tool]
        per_event = _median([r.us_per_event for r in mine])
        cpu = _median([r.cpu_s for r in mine])
        print(f"  {tool:<10} {per_event:6.1f} us/event  ({cpu:.2f} s CPU for {mine[0].events} events)")
        rows.append(Row("peers", f"{tool} CPU per event", per_event, "us", "process tree, start-up included"))
        ttft = _median(
            [r.agreement.ttft_p50 for r in mine if r.agreement.ttft_p50 is not None] or [float("nan")]
        )
        rows.append(Row("peers", f"{tool} TTFT p50", ttft, "ms"))
    pa = [r.cpu_by_name.get("perf_analyzer", 0.0) / r.events * 1e6 for r in runs if r.tool == "genai-perf"]
    in_run = [
        r.cpu_by_name.get("trtclient, during the run", 0.0) / r.events * 1e6
        for r in runs
        if r.tool == "trtclient"
    ]
    if in_run:
        print(f"  trtclient during the run (its JSON's client.cpu_s) {_median(in_run):6.1f} us/event")
        rows.append(
            Row("peers", "trtclient CPU per event during the run", _median(in_run), "us", "client.cpu_s")
        )
    pa = [r.cpu_by_name.get("perf_analyzer", 0.0) / r.events * 1e6 for r in runs if r.tool == "genai-perf"]
    if pa:
        print(f"  perf_analyzer alone {_median(pa):6.1f} us/event (psutil samples)")
        rows.append(Row("peers", "perf_analyzer alone CPU per event", _median(pa), "us", "psutil samples"))
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run()))
