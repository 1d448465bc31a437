"""Figures of one run for the HTML report (needs matplotlib): latency over time, token gaps, throughput.

- ``latency_over_time``: each request's TTFT and E2E against when it was sent; the figure that shows
  what a bimodal TTFT is (requests that queued behind others, and when).
- ``token_gaps``: distributions of ITL (per event) and TPOT (per request), p50 and p99 marked.
- ``throughput_over_time``: output tokens/s over the run, and beside it the server's queue, batch size
  and KV-cache use from ``/metrics`` when it reports them (the client's requests in flight otherwise).

Each returns PNG bytes; every figure's title carries the run's configuration and legends sit outside
the axes. Time series use whole steps only, so no partial last step shows as a false drop.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from trtclient.bench.plots import _pyplot, _step_ns
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord
from trtclient.prometheus import Sample

__all__ = ["latency_over_time", "png_bytes", "server_series", "throughput_over_time", "token_gaps"]

Scrapes = Sequence[tuple[int, list[Sample]]]

#: From this many values on, histograms leave out what lies beyond p99.9.
MANY = 1000

BLUE, RED, GREEN, ORANGE, GREY = "#4477aa", "#ee6677", "#228833", "#ee7733", "#888888"


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (and closed)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _title(fig: Any, what: str, config: str) -> None:
    fig.suptitle(textwrap.fill(f"{what} · {config}", 120), fontsize=10)


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def latency_over_time(records: Sequence[RequestRecord], config: str) -> bytes:
    """TTFT and E2E of each successful measured request against its send time."""
    plt = _pyplot()
    ok = [r for r in m.measured(records) if r.status == "ok" and r.sent_ns is not None]
    fig, axes = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, layout="constrained")
    t0 = min((r.sent_ns for r in ok if r.sent_ns is not None), default=0)
    for ax, (name, metric, colour) in zip(
        axes, (("TTFT", m.ttft_ns, BLUE), ("E2E latency", m.e2e_ns, RED)), strict=True
    ):
        points = [((r.sent_ns or 0) - t0, metric(r)) for r in ok]
        xs = [x / 1e9 for x, v in points if v is not None]
        ys = [v / 1e6 for _, v in points if v is not None]
        if not xs:
            _no_data(ax)
        ax.scatter(xs, ys, s=10, color=colour, label=f"{name} of a request")
        if ys:
            ordered = sorted(ys)
            for q, style in ((50, "-"), (99, "--")):
                ax.axhline(m.percentile(ordered, q), color=GREY, linestyle=style, label=f"{name} p{q}")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    axes[-1].set_xlabel("send time (s since the first measured request)")
    _title(fig, "TTFT and E2E over the run", config)
    return png_bytes(fig)


def token_gaps(records: Sequence[RequestRecord], config: str) -> bytes:
    """Histograms of ITL (every gap between events) and TPOT (one per request)."""
    plt = _pyplot()
    ok = [r for r in m.measured(records) if r.status == "ok"]
    itl = [g / 1e6 for r in ok for g in m.itl_ns(r)]
    tpot = [v / 1e6 for v in map(m.tpot_ns, ok) if v is not None]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for ax, name, values, colour in ((axes[0], "ITL (per event)", itl, BLUE), (axes[1], "TPOT", tpot, GREEN)):
        ax.set_title(f"{name}: {len(values)} values", fontsize=10)
        ax.set_xlabel("ms")
        ax.set_ylabel("count")
        if not values:
            _no_data(ax)
            continue
        ordered = sorted(values)
        # A few extreme values would squeeze every bar into one; beyond p99.9 they are counted, not drawn.
        hi = m.percentile(ordered, 99.9) if len(ordered) >= MANY else ordered[-1]
        shown = [v for v in values if v <= hi]
        ax.hist(shown, bins=min(60, max(5, len(shown) // 5)), color=colour, label=name)
        for q, style in ((50, "-"), (99, "--")):
            x = m.percentile(ordered, q)
            ax.axvline(x, color=RED, linestyle=style, label=f"p{q} {x:.1f} ms")
        if len(shown) < len(values):
            ax.plot([], [], " ", label=f"{len(values) - len(shown)} above p99.9 not drawn")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    _title(fig, "Token gaps", config)
    return png_bytes(fig)


def server_series(scrapes: Scrapes, t0_ns: int) -> dict[str, list[tuple[float, float]]]:
    """Gauges over time from /metrics scrapes: queue (pending requests), batch size, KV-cache use."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for at_ns, samples in scrapes:
        t = (at_ns - t0_ns) / 1e9
        pending = [s.value for s in samples if s.name == "nv_inference_pending_request_count"]
        if pending:
            out["queued requests (Triton, all models)"].append((t, sum(pending)))
        kv: dict[str, float] = {}
        for s in samples:
            if s.name == "nv_trt_llm_request_metrics" and s.label("request_type") == "active":
                out["batch size (active requests)"].append((t, s.value))
            if s.name == "nv_trt_llm_kv_cache_block_metrics":
                kv[s.label("kv_cache_block_type")] = s.value
        if kv.get("max"):
            out["KV-cache blocks used (%)"].append((t, 100 * kv.get("used", 0.0) / kv["max"]))
    return dict(out)


def throughput_over_time(records: Sequence[RequestRecord], scrapes: Scrapes, config: str) -> bytes:
    """Output tokens/s over the run above the server's state (or the client's requests in flight)."""
    plt = _pyplot()
    recs = m.measured(records)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, layout="constrained")
    sent = [r.sent_ns for r in recs if r.sent_ns is not None]
    ends = [r.end_ns for r in recs if r.end_ns is not None]
    if not sent or not ends:
        _no_data(top)
        _title(fig, "Throughput over the run", config)
        return png_bytes(fig)
    start = min(sent)
    step = max(250_000_000, _step_ns(max(ends) - start, recs))
    whole = max(1, (max(ends) - start) // step)  # whole steps only: no partial step at the end
    end = start + whole * step
    xs = [(i + 0.5) * step / 1e9 for i in range(whole)]
    top.plot(xs, m.token_rate_series(recs, start, end, step), color=BLUE, label="output tokens/s")
    top.set_ylabel("output tokens/s")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    series = server_series(scrapes, start)
    colours = iter((ORANGE, GREEN, RED))
    for name, points in series.items():
        inside = [(t, v) for t, v in points if 0 <= t <= (end - start) / 1e9]
        bottom.step(
            [t for t, _ in inside], [v for _, v in inside], where="post", color=next(colours), label=name
        )
    bottom.step(
        xs,
        m.inflight_series(recs, start, end, step),
        where="mid",
        color=GREY,
        label="client: requests in flight",
    )
    bottom.set_ylabel("requests / %")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    bottom.set_xlabel("seconds since the first measured request")
    if not any(name.startswith(("batch", "KV")) for name in series):
        bottom.set_title("the server reports no batch size or KV-cache gauges", fontsize=9)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    _title(fig, "Throughput and load over the run", config)
    return png_bytes(fig)
