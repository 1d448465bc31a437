"""Sweep curves, one point per load level (needs matplotlib, ``[plots]`` extra).

``throughput_latency.png``: TTFT and TPOT (p50 and p99) against requests per second;
``tokens_per_user.png``: total output tokens/s against tokens/s per user, the curve capacity planners
read the interactivity/throughput trade-off from. Several series (e.g. two sweeps being compared) are
drawn on the same axes, one colour each; legends sit outside the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtclient.bench.figures import key_figures, level_label
from trtclient.bench.plots import _pyplot

__all__ = ["Series", "slo_against_rate", "write_sweep_plots"]

#: (name, bench summaries of its levels in order)
Series = tuple[str, Sequence[Mapping[str, Any]]]

COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")


def write_sweep_plots(series: Sequence[Series], directory: str | Path, title: str) -> list[Path]:
    """Write both figures into ``directory`` with ``title`` (the run's configuration); return their paths."""
    plt = _pyplot()
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _throughput_latency(plt, series, title, out_dir / "throughput_latency.png"),
        _tokens_per_user(plt, series, title, out_dir / "tokens_per_user.png"),
    ]


def _points(
    levels: Sequence[Mapping[str, Any]], x: str, y: str
) -> tuple[list[float], list[float], list[str]]:
    xs, ys, labels = [], [], []
    for summary in levels:
        figs = key_figures(summary)
        if figs.get(x) is not None and figs.get(y) is not None:
            xs.append(float(figs[x] or 0))
            ys.append(float(figs[y] or 0))
            labels.append(level_label(summary))
    return xs, ys, labels


def _wrap(title: str, width: int = 110) -> str:
    words, lines, line = title.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _throughput_latency(plt: Any, series: Sequence[Series], title: str, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    for ax, metric, name in zip(axes, ("ttft", "tpot"), ("TTFT", "TPOT"), strict=True):
        for (label, levels), colour in zip(series, COLOURS, strict=False):
            for stat, style, own in (("p50", "-", COLOURS[0]), ("p99", "--", COLOURS[1])):
                xs, ys, names = _points(levels, "requests_per_s", f"{metric}_{stat}")
                prefix = f"{label}: " if len(series) > 1 else ""
                shade = colour if len(series) > 1 else own
                ax.plot(xs, ys, style, marker="o", color=shade, label=f"{prefix}{name} {stat}")
                if stat == "p99":
                    for x, y, text in zip(xs, ys, names, strict=True):
                        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("throughput (successful requests/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    handles2, labels2 = axes[1].get_legend_handles_labels()
    fig.legend(handles + handles2, labels + labels2, loc="outside right upper", fontsize=9)
    fig.suptitle(_wrap(f"Throughput against latency · {title}"), fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _tokens_per_user(plt: Any, series: Sequence[Series], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
    for (label, levels), colour in zip(series, COLOURS, strict=False):
        xs, ys, names = _points(levels, "tokens_per_s_per_user", "output_tokens_per_s")
        ax.plot(xs, ys, "-", marker="o", color=colour, label=label)
        for x, y, text in zip(xs, ys, names, strict=True):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("tokens/s per user (1000 / mean TPOT ms)")
    ax.set_ylabel("total output tokens/s")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9)
    fig.suptitle(_wrap(f"Total throughput against interactivity · {title}", 100), fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def slo_against_rate(steps: Sequence[Mapping[str, Any]], slos: Mapping[str, float], title: str) -> bytes:
    """Each SLO's figure at every capacity step against the offered rate, its limit drawn across."""
    from trtclient.bench.figures import stat
    from trtclient.bench.run_plots import png_bytes

    plt = _pyplot()
    width = max(10.0, 6.5 * len(slos))
    fig, axes = plt.subplots(1, len(slos), figsize=(width, 4.8), layout="constrained", squeeze=False)
    for ax, (key, limit) in zip(axes[0], slos.items(), strict=True):
        metric, statistic = key.split(":")
        for passed, colour, label in ((True, COLOURS[2], "holds"), (False, COLOURS[1], "breaks")):
            points = [
                (float(s["rate"]), stat(s, metric, statistic))
                for s in steps
                if bool(s.get("passed")) == passed and "schema" in s
            ]
            xs = [x for x, y in points if y is not None]
            ys = [y for _, y in points if y is not None]
            ax.scatter(xs, ys, color=colour, s=30, label=f"step {label}", zorder=3)
        ax.axhline(limit, color="#444444", linestyle="--", label=f"SLO {limit:g} ms")
        ax.set_xlabel("offered rate (requests/s)")
        ax.set_ylabel(f"{metric} {statistic} (ms)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    fig.suptitle(_wrap(f"SLO figures against the offered rate · {title}", int(11 * width)), fontsize=10)
    return png_bytes(fig)
