"""Run NVIDIA's example gRPC clients, unchanged, against the embedded server and print pass/fail per run.

The clients are ``end_to_end_grpc_client.py`` (ensemble and BLS, streamed and not, with the request
options of the seed request) and ``inflight_batcher_llm_client.py`` (``tensorrt_llm`` straight, including
its stop request) from a ``tensorrtllm_backend`` checkout (``inflight_batcher_llm/client/``) or a
TensorRT-LLM 1.x checkout (``triton_backend/inflight_batcher_llm/client/``). They are not part of this
repository: point ``--backend-dir`` at a checkout. They need ``tritonclient[grpc]`` and ``transformers``
in this interpreter.

Two embedded servers run with the ``orin-int4`` timing profile (so a stop request lands on a running
request): the default one (decoupled models, what streaming needs) and one whose models are not
decoupled, which the in-flight batcher client's non-streamed path needs, as on a GPU deployment.

A run passes when the client exits 0 and prints no server error; a run whose options the client version
does not have is skipped. The embedded repository follows the newest interface, so clients older than
v0.14 (which expect ``batch_index`` in every response) fail against it, as they would against a v0.14 or
later GPU deployment. Run:
``python -m benchmarks.upstream_clients --backend-dir /path/to/tensorrtllm_backend``. Not part of
``make test`` nor of the default benchmark list.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.tokenizer import default_tokenizer_dir

CLIENT_DIRS = ("inflight_batcher_llm/client", "triton_backend/inflight_batcher_llm/client")
FAILURE_MARKERS = ("Received an error from server", "Traceback (most recent call last)")
PROMPT = "What is machine learning?"


class NonDecoupledTriton(EmbeddedTriton):
    """The embedded server with every model's ``decoupled`` off (non-streaming deployments)."""

    def repository_values(self, engine_dir: Path, tokenizer_dir: Path) -> dict[str, str]:
        return {**super().repository_values(engine_dir, tokenizer_dir), "decoupled_mode": "false"}


@dataclass
class Case:
    client: str
    server: str
    """``decoupled`` or ``not-decoupled``."""
    args: list[str]

    @property
    def label(self) -> str:
        return f"{self.client} [{self.server}] {' '.join(self.args)}"


def cases(tokenizer_dir: Path) -> Iterator[Case]:
    e2e = "end_to_end_grpc_client.py"
    for model in ("ensemble", "tensorrt_llm_bls"):
        base = ["-p", PROMPT, "-o", "16", "--model-name", model]
        for streaming in ([], ["--streaming"]):
            yield Case(e2e, "decoupled", base + streaming)
            yield Case(e2e, "decoupled", base + streaming + ["--stop-words", " the", "--bad-words", " and"])
            yield Case(e2e, "decoupled", base + streaming + ["--exclude-input-in-output"])
            yield Case(e2e, "decoupled", base + streaming + ["--return-perf-metrics"])
            yield Case(e2e, "decoupled", base + streaming + ["--num-return-sequences", "2"])
            logits = ["--return-log-probs", "--return-context-logits", "--return-generation-logits"]
            yield Case(e2e, "decoupled", base + streaming + logits)
        batch = json.dumps([PROMPT, "Tell me a story"])
        yield Case(e2e, "decoupled", ["-p", batch, "-o", "16", "--model-name", model, "--batch-inputs"])
        yield Case(e2e, "not-decoupled", base)
    ifb = "inflight_batcher_llm_client.py"
    base = ["--tokenizer-dir", str(tokenizer_dir), "--request-output-len", "40"]
    returns = ["--return-log-probs", "--return-context-logits", "--return-generation-logits"]
    returns += ["--return-perf-metrics"]
    yield Case(ifb, "decoupled", base + ["--streaming"])
    yield Case(ifb, "decoupled", base + ["--streaming", "--stop-after-ms", "200", "--request-id", "11"])
    yield Case(ifb, "decoupled", base + ["--streaming", "--exclude-input-in-output"])
    yield Case(ifb, "decoupled", base + ["--streaming", *returns])
    yield Case(ifb, "decoupled", base + ["--num-return-sequences", "2"])
    yield Case(ifb, "not-decoupled", base)
    yield Case(ifb, "not-decoupled", base + ["--stop-after-ms", "200", "--request-id", "12"])
    yield Case(ifb, "not-decoupled", base + returns)


def find_clients(backend_dir: Path) -> Path:
    for relative in CLIENT_DIRS:
        folder = backend_dir / relative
        if (folder / "end_to_end_grpc_client.py").exists():
            return folder
    wanted = " or ".join(f"{backend_dir}/{r}" for r in CLIENT_DIRS)
    raise SystemExit(f"no end_to_end_grpc_client.py under {wanted}: give a tensorrtllm_backend checkout")


def client_flags(folder: Path, client: str) -> str:
    """The client's ``--help`` text: older clients lack some options."""
    done = subprocess.run(
        [sys.executable, client, "--help"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def unknown_flags(case: Case, help_text: str) -> list[str]:
    return [a for a in case.args if a.startswith("--") and a not in help_text]


def run_case(folder: Path, case: Case, grpc_url: str) -> tuple[bool, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, case.client, "-u", grpc_url, *case.args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return False, "timed out after 120 s", time.perf_counter() - started
    output = done.stdout + done.stderr
    failed = done.returncode != 0 or any(marker in output for marker in FAILURE_MARKERS)
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    return not failed, tail, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upstream_clients", description=__doc__)
    parser.add_argument("--backend-dir", type=Path, required=True, help="a tensorrtllm_backend checkout")
    parser.add_argument("--verbose", action="store_true", help="print each client's last output line")
    args = parser.parse_args(argv)
    folder = find_clients(args.backend_dir)
    all_cases = list(cases(default_tokenizer_dir()))
    helps = {name: client_flags(folder, name) for name in {c.client for c in all_cases}}
    passed = skipped = 0
    with ExitStack() as stack:
        servers = {
            "decoupled": stack.enter_context(EmbeddedTriton(profile="orin-int4")).handle,
            "not-decoupled": stack.enter_context(NonDecoupledTriton(profile="orin-int4")).handle,
        }
        print(f"clients: {folder}")
        for case in all_cases:
            missing = unknown_flags(case, helps[case.client])
            if missing:
                skipped += 1
                print(f"SKIP           {case.label}  (this client has no {' '.join(missing)})", flush=True)
                continue
            ok, tail, seconds = run_case(folder, case, servers[case.server].grpc_url)
            passed += ok
            print(f"{'PASS' if ok else 'FAIL'}  {seconds:5.1f} s  {case.label}", flush=True)
            if args.verbose or not ok:
                print(f"      {tail}")
    ran = len(all_cases) - skipped
    print(f"{passed} of {ran} passed, {skipped} skipped (options this client version does not have)")
    return 0 if passed == ran else 1


if __name__ == "__main__":
    sys.exit(main())
