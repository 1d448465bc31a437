"""PNG plots of a run: latency distributions and throughput over time (needs matplotlib, ``[plots]`` extra).

``latency.png`` shows TTFT and E2E histograms of the successful measured requests, with p50 and p99
marked; ``timeline.png`` shows output tokens per second and requests in flight over the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord

__all__ = ["PlotsUnavailable", "write_plots"]


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(
            "plots need matplotlib: pip install 'trtclient[plots]' (or drop --plots)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _step_ns(span_ns: int, recs: Sequence[RequestRecord]) -> int:
    """About 50 points, at least 50 ms, and at least four typical token gaps (so steps do not alias)."""
    gaps = sorted(g for r in recs for g in m.itl_ns(r))
    typical = int(m.percentile(gaps, 50)) if gaps else 0
    return max(50_000_000, span_ns // 50, 4 * typical)


def write_plots(records: Sequence[RequestRecord], directory: str | Path) -> list[Path]:
    """Write ``latency.png`` and ``timeline.png`` into ``directory``; return their paths."""
    plt = _pyplot()
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = m.measured(records)
    ok = [r for r in recs if r.status == "ok"]
    paths = [_latency(plt, ok, out_dir / "latency.png"), _timeline(plt, recs, out_dir / "timeline.png")]
    return paths


def _latency(plt: Any, ok: Sequence[RequestRecord], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, metric) in zip(axes, (("TTFT", m.ttft_ns), ("E2E latency", m.e2e_ns)), strict=True):
        values = [v / 1e6 for v in map(metric, ok) if v is not None]
        ax.set_title(f"{name} ({len(values)} requests)")
        ax.set_xlabel("ms")
        ax.set_ylabel("requests")
        if not values:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.hist(values, bins=min(50, max(5, len(values) // 4)), color="#4477aa")
        ordered = sorted(values)
        for q, style in ((50, "-"), (99, "--")):
            x = m.percentile(ordered, q)
            ax.axvline(x, color="#cc3311", linestyle=style, label=f"p{q} {x:.1f} ms")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _timeline(plt: Any, recs: Sequence[RequestRecord], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4))
    sent = [r.sent_ns for r in recs if r.sent_ns is not None]
    ends = [r.end_ns for r in recs if r.end_ns is not None]
    if sent and ends:
        start, end = min(sent), max(ends)
        step = _step_ns(end - start, recs)
        tokens = m.token_rate_series(recs, start, end, step)
        inflight = m.inflight_series(recs, start, end, step)
        xs = [i * step / 1e9 for i in range(len(tokens))]
        ax.plot(xs, tokens, color="#4477aa", label="output tokens/s")
        ax.set_ylabel("output tokens/s")
        ax2 = ax.twinx()
        ax2.step(xs, inflight, where="post", color="#ee7733", label="requests in flight (mean per step)")
        ax2.set_ylabel("requests in flight")
        ax.set_ylim(bottom=0)
        ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(lines, [h.get_label() for h in lines], loc="lower center")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since the first request")
    ax.set_title("throughput and load over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
