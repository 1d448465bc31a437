"""Run every benchmark in the repository and print one summary table.

Each benchmark module in ``BENCHMARKS`` exposes ``run() -> list[Row]`` and prints its own detailed
report as it goes. ``python -m benchmarks NAME ...`` runs only the named ones; those in ``ON_REQUEST``
(``peers``: installs GenAI-Perf and AIPerf on first use) run only when named.
"""

from __future__ import annotations

import importlib
import sys

from benchmarks.common import Row, format_table

BENCHMARKS: tuple[str, ...] = (
    "embedded_server",
    "client_cpu",
    "bench_accuracy",
    "bench_open_loop",
    "locust_capacity",
    "locust_distributed",
    "soak",
    "memory",
    "workload_cache",
    "trace_replay",
)
#: Run only when named: they install packages or need a checkout outside this repository.
ON_REQUEST: tuple[str, ...] = ("peers",)


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS + ON_REQUEST]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS + ON_REQUEST)}")
        return 2
    rows: list[Row] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        rows.extend(module.run())
    print("\n=== summary ===")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
