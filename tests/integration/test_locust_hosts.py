"""Locust distributed across simulated hosts: a master and two workers, each in its own Linux network
namespace, against the embedded Triton in a fourth, all joined by veth pairs on a bridge (in a fifth
namespace), as on four machines of one subnet.

Checked: the master's merged figures (requests, output tokens, TTFT/ITL/TPOT/E2E sample counts and
the token throughput) are the sums of what the workers measured; and with one worker killed
(SIGKILL) mid-run, the master says so with the number of requests the lost worker had in flight at
its last report, the run completes, and what the master merged is the survivor's figures plus exactly
the lost worker's first reported requests.

Needs root and ``ip`` (iproute2). Where network namespaces cannot be created the tests are skipped
with the reason printed, except in CI (``CI=true``), where that fails them. Names are unique per run
and everything created is deleted at the end, also when a test fails; processes are stopped by pid.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records

pytestmark = [pytest.mark.integration, pytest.mark.locust]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.251.{net}"
SERVER_PORT = 8000
MASTER_PORT = 5557
TOTALS = re.compile(r"(test|worker) totals: (.*)")
LOST = re.compile(r"worker (\S+) was lost \(no heartbeat\): (\d+) requests in flight")
#: Upper bound on any wait here; reached only when something is broken.
PATIENCE_S = 120.0
HOSTS = ("server", "master", "worker1", "worker2")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass
class Hosts:
    """The namespaces of one test, by host name, and their addresses."""

    namespaces: dict[str, str]
    addresses: dict[str, str]

    def command(self, host: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[host], *argv]


def _cannot_create(reason: str) -> None:
    message = f"network namespaces cannot be created here: {reason}"
    print(message)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI must run this test as root with iproute2)")
    pytest.skip(message)


@pytest.fixture()
def hosts() -> Iterator[Hosts]:
    """Four hosts (namespaces) on one bridge; all deleted afterwards."""
    if shutil.which("ip") is None:
        _cannot_create("the ip command (iproute2) is not installed")
    if os.geteuid() != 0:
        _cannot_create("not running as root")
    tag = secrets.token_hex(3)  # names: at most 15 characters
    net = SUBNET.format(net=int(tag[:2], 16) % 250)
    bridge_ns = f"tl{tag}br"
    namespaces = {host: f"tl{tag}{host[0]}{host[-1]}" for host in HOSTS}
    addresses = {host: f"{net}.{i + 1}" for i, host in enumerate(HOSTS)}
    created: list[str] = []
    try:
        try:
            _ip("netns", "add", bridge_ns)
        except RuntimeError as exc:
            _cannot_create(str(exc))
        created.append(bridge_ns)
        _ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge_ns, "link", "set", "br0", "up")
        for i, host in enumerate(HOSTS):
            ns = namespaces[host]
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            inner, outer = f"tl{tag}{i}h", f"tl{tag}{i}b"
            _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "netns", bridge_ns)
            _ip("-n", bridge_ns, "link", "set", outer, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{addresses[host]}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
        yield Hosts(namespaces, addresses)
    finally:
        for ns in reversed(created):  # a namespace takes its veth ends with it
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", ns)


class Process:
    """One command in a namespace, in its own process group, output in a file; stopped by pid."""

    def __init__(self, log: Path, argv: list[str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()  # anything left in its group (the server's children)
        self.popen.wait(10)


@pytest.fixture()
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


def _wait_for(condition: object, what: str, process: Process | None = None) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():  # type: ignore[operator]
        if process is not None and process.popen.poll() is not None:
            raise AssertionError(f"{what}: the process ended first:\n{process.output[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {PATIENCE_S} s")
        time.sleep(0.2)  # polling an observable condition, not standing in for one


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def start_server(hosts: Hosts, tmp_path: Path, started: list[Process]) -> str:
    """The embedded Triton in the server's namespace, listening on its address; its URL once ready."""
    address = hosts.addresses["server"]
    argv = hosts.command(
        "server", sys.executable, "-m", "trtclient.cli", "serve", "--address", address,
        "--http-port", str(SERVER_PORT), "--grpc-port", "8001", "--metrics-port", "8002",
        "--profile", "orin-int4",
    )  # fmt: skip
    server = Process(tmp_path / "server.log", argv)
    started.append(server)
    _wait_for(lambda: "Triton is ready" in server.output, "the embedded Triton starting", server)
    return f"http://{address}:{SERVER_PORT}"


def start_locusts(
    hosts: Hosts, tmp_path: Path, started: list[Process], url: str, seconds: int
) -> tuple[Process, list[Process]]:
    master_host = hosts.addresses["master"]
    locust = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "concurrency.py")]
    workers = []
    for host in ("worker1", "worker2"):
        argv = hosts.command(
            host, *locust, "--worker", "--master-host", master_host, "--master-port", str(MASTER_PORT),
        )  # fmt: skip
        workers.append(Process(tmp_path / f"{host}.log", argv))
        started.append(workers[-1])
    argv = hosts.command(
        "master", *locust, "--master", "--headless", "--expect-workers", "2",
        "--master-bind-host", master_host, "--master-bind-port", str(MASTER_PORT),
        "--host", url, "-u", "8", "-r", "8", "-t", f"{seconds}s", "--max-tokens", "24",
        "--csv", str(tmp_path / "run"), "--records", str(tmp_path / "records.jsonl"),
    )  # fmt: skip
    master = Process(tmp_path / "master.log", argv)
    started.append(master)
    return master, workers


def totals(output: str, role: str) -> list[dict[str, int]]:
    return [
        {k: int(v) for k, v in (pair.split("=") for pair in pairs.split())}
        for who, pairs in TOTALS.findall(output)
        if who == role
    ]


def figures(records: list[RequestRecord]) -> dict[str, int]:
    """What the totals line counts, from records."""
    ok = [r for r in records if r.status == "ok"]
    return {
        "ok": len(ok),
        "output_tokens": sum(r.output_tokens or 0 for r in ok),
        "n_ttft": sum(1 for r in ok if m.ttft_ns(r) is not None),
        "n_itl": sum(len(m.itl_ns(r)) for r in ok),
    }


def worker_records(tmp_path: Path) -> list[list[RequestRecord]]:
    """Each worker's records (the master's ``--records FILE`` reaches the workers as ``FILE.workerN``)."""
    return [list(read_records(p)) for p in sorted(tmp_path.glob("records.jsonl.worker*"))]


def finished(tmp_path: Path) -> list[int]:
    """Requests each worker has finished so far (a records file is flushed as each one ends)."""
    return [_lines(p) for p in sorted(tmp_path.glob("records.jsonl.worker*"))]


def merged_requests(tmp_path: Path) -> int:
    """Requests the master has merged from the workers' reports so far (its CSV, rewritten each second)."""
    path = tmp_path / "run_stats.csv"
    if not path.exists():
        return 0
    for row in csv.DictReader(path.read_text().splitlines()):
        if row["Name"] == "Aggregated":
            return int(row["Request Count"])
    return 0


def test_master_and_workers_on_separate_hosts_add_up(
    hosts: Hosts, tmp_path: Path, processes: list[Process]
) -> None:
    url = start_server(hosts, tmp_path, processes)
    master, workers = start_locusts(hosts, tmp_path, processes, url, seconds=12)
    assert master.popen.wait(PATIENCE_S) == 0, master.output[-3000:]
    for worker in workers:
        worker.popen.wait(PATIENCE_S)
    (merged,) = totals(master.output, "test")
    parts = [totals(w.output, "worker")[0] for w in workers]
    assert all(p["ok"] for p in parts), "both workers streamed"
    for key in ("ok", "failed", "output_tokens", "n_ttft", "n_itl", "n_tpot", "n_e2e"):
        assert merged[key] == sum(p[key] for p in parts), key
    # What each worker measured is on disk: the master's figures are their sums.
    on_disk = [figures(r) for r in worker_records(tmp_path)]
    assert len(on_disk) == 2
    for key in ("ok", "output_tokens", "n_ttft", "n_itl"):
        assert merged[key] == sum(f[key] for f in on_disk), key
    with (tmp_path / "run_throughput.csv").open() as file:
        throughput = {line.split(",")[0]: line.split(",")[1] for line in file.read().splitlines()[1:]}
    assert float(throughput["output_tokens"]) == merged["output_tokens"]


def test_a_worker_killed_mid_run_is_reported_and_the_survivors_are_merged(
    hosts: Hosts, tmp_path: Path, processes: list[Process]
) -> None:
    url = start_server(hosts, tmp_path, processes)
    master, (doomed, survivor) = start_locusts(hosts, tmp_path, processes, url, seconds=25)
    # Both workers have finished requests, and the master has merged at least as many as they had
    # finished then (workers report every 3 s): then one dies without a word.
    _wait_for(
        lambda: len(finished(tmp_path)) == 2 and min(finished(tmp_path)) >= 6, "requests ending", master
    )
    done = sum(finished(tmp_path))
    _wait_for(lambda: merged_requests(tmp_path) >= done, "reports reaching the master", master)
    doomed.kill(signal.SIGKILL)
    doomed.popen.wait(30)
    code = master.popen.wait(PATIENCE_S)
    survivor.popen.wait(PATIENCE_S)
    output = master.output
    assert code in (0, 1), output[-3000:]  # the run completes (1 where Locust counts the lost worker)
    lost = LOST.findall(output)
    assert len(lost) == 1, output[-3000:]
    worker_id, in_flight = lost[0][0], int(lost[0][1])
    assert in_flight >= 1  # its users stream back to back: at any report some are mid-stream
    summary = f"lost workers: 1 ({worker_id}); requests they had in flight at their last reports: {in_flight}"
    assert summary in output
    (merged,) = totals(output, "test")
    (kept,) = totals(survivor.output, "worker")
    # Which records file is whose: the survivor's holds exactly what its totals line says.
    files = worker_records(tmp_path)
    assert len(files) == 2
    alive = [f for f in files if figures(f) == {k: kept[k] for k in figures(f)}]
    assert len(alive) == 1, [figures(f) for f in files]
    (dead,) = [f for f in files if f is not alive[0]]
    # What the master merged beyond the survivor is exactly the lost worker's first j requests:
    # everything it reported before it died, nothing made up.
    beyond = {k: merged[k] - kept[k] for k in figures(dead)}
    assert beyond["ok"] > 0, "the lost worker's reported requests are merged"
    prefixes = [figures(dead[:j]) for j in range(len(dead) + 1)]
    assert beyond in prefixes, (beyond, len(dead))
