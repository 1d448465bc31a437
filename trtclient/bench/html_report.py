"""Self-contained HTML reports of a bench run, a sweep or a capacity search (``--html FILE``).

One file with everything inline: the run's configuration, the summary tables and the figures as
embedded PNGs (``data:`` URIs); no script, no stylesheet or font from the network, so it opens offline
and can be attached to a ticket as it is.
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trtclient.bench.figures import COLUMNS, fmt, key_figures, level_label
from trtclient.loadtest.records import RequestRecord
from trtclient.prometheus import Sample

__all__ = ["bench_html", "capacity_html", "sweep_html", "write_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
img { max-width: 100%; display: block; margin: 0.8em 0; border: 1px solid #eee; }
.answer { font-size: 1.1em; background: #f4f8f4; padding: 0.6em 1em; border-left: 4px solid #228833; }
.warn { color: #a33; }
"""

_LATENCIES = (("ttft", "TTFT"), ("ttft_sched", "TTFT from schedule"), ("itl", "ITL (per event)"),
              ("tpot", "TPOT"), ("e2e", "E2E"), ("e2e_sched", "E2E from schedule"))  # fmt: skip


def write_html(text: str, path: str | Path) -> None:
    """Write a report."""
    Path(path).write_text(text, encoding="utf-8")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: int = 1) -> str:
    def cell(tag: str, i: int, v: Any) -> str:
        css = ' class="text"' if i < text_columns else ""
        return f"<{tag}{css}>{_e(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += _flatten(value, f"{name}.")
        elif key != "epoch_offset_ns":
            out.append((name, "" if value is None else str(value)))
    return out


def _config_section(config: Mapping[str, Any], note: str = "") -> str:
    return f"<h2>Configuration</h2>{note}" + _table(["setting", "value"], _flatten(config), text_columns=2)


def _key_table(first: str, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    header = [first, *(f"{title}{' (ms)' if 'TTFT' in title or 'TPOT' in title or 'E2E' in title else ''}"
                       for _, title in COLUMNS)]  # fmt: skip
    return _table(header, [[label, *(fmt(figs.get(k)) for k, _ in COLUMNS)] for label, figs in rows])


def _latency_table(summary: Mapping[str, Any]) -> str:
    stats = ("count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max")
    rows = []
    for key, label in _LATENCIES:
        block = summary.get(f"{key}_ms")
        if isinstance(block, Mapping):
            rows.append([label, *(fmt(block.get(s)) for s in stats)])
    return _table(["latency (ms)", *stats], rows)


def _notes(summary: Mapping[str, Any]) -> list[str]:
    out = [f"<p>note: {_e(n)}</p>" for n in summary.get("notes", [])]
    out += [f'<p class="warn">warning: {_e(w)}</p>' for w in summary.get("warnings", [])]
    return out


def bench_html(
    summary: Mapping[str, Any], records: Sequence[RequestRecord], scrapes: Sequence[tuple[int, list[Sample]]]
) -> str:
    """The report of one bench run: configuration, tables, and the run's figures."""
    from trtclient.bench.run_plots import latency_over_time, throughput_over_time, token_gaps

    config = summary.get("config", {})
    title = str(config.get("description", "trtclient bench"))
    req = summary.get("requests", {})
    body = [
        f"<p>{_e(req.get('sent'))} requests sent: {_e(req.get('ok'))} ok, {_e(req.get('failed'))} failed, "
        f"{_e(req.get('cancelled'))} cancelled, over {fmt(summary.get('duration_s'))} s"
        f"{' (interrupted: partial results)' if summary.get('interrupted') else ''}.</p>",
        "<h2>Summary</h2>",
        _key_table("load", [(level_label(summary), key_figures(summary))]),
        _latency_table(summary),
        *_notes(summary),
        "<h2>Figures</h2>",
        _img(latency_over_time(records, title), "TTFT and E2E over the run"),
        _img(token_gaps(records, title), "ITL and TPOT distributions"),
        _img(throughput_over_time(records, scrapes, title), "throughput and server state over the run"),
        _config_section(config),
    ]
    return _page(title, body)


def _sweep_figures(summaries: Sequence[Mapping[str, Any]], title: str, name: str) -> list[str]:
    from trtclient.bench.sweep_plots import write_sweep_plots

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_sweep_plots([(name, summaries)], tmp, title)
        return [_img(p.read_bytes(), p.stem.replace("_", " ")) for p in paths]


def sweep_html(document: Mapping[str, Any], title: str) -> str:
    """The report of a sweep: one row per level, the sweep curves, each level's configuration."""
    levels = document.get("levels", [])
    summaries = [e for e in levels if "schema" in e]
    failed = [e for e in levels if "schema" not in e]
    body = [
        "<h2>Levels (latencies in ms)</h2>",
        _key_table("level", [(level_label(s), key_figures(s)) for s in summaries]),
    ]
    body += [
        f'<p class="warn">level {_e(e["level"]["value"])} could not run: {_e(e["error"])}</p>' for e in failed
    ]
    body += ["<h2>Figures</h2>", *_sweep_figures(summaries, title, "sweep")]
    if summaries:
        note = "<p>Of the first level; the levels differ only in their load.</p>"
        body.append(_config_section(summaries[0].get("config", {}), note))
    return _page(title, body)


def capacity_html(document: Mapping[str, Any], title: str) -> str:
    """The report of a capacity search: the answer, its evidence and confidence, every step, curves."""
    from trtclient.bench.sweep_plots import slo_against_rate

    rate = document.get("max_rate")
    slos = document.get("slos", {})
    conf = document.get("confidence", {})
    answer = f"{rate:g} req/s meets every SLO" if rate is not None else "no rate tried meets the SLOs"
    body = [f'<p class="answer"><b>{_e(answer)}</b><br>{_e(document.get("evidence", ""))}</p>']
    confidence = []
    for side, word in (("holds", "held"), ("breaks", "broke")):
        v = conf.get(side)
        if v:
            confidence.append(f"{v['rate']:g} req/s {word} in {v['agreed']} of {v['runs']} runs")
    if conf.get("gap") is not None:
        confidence.insert(0, f"bracketed within {conf['gap']:.0%}")
    stopped = _e(document.get("stopped"))
    body.append(f"<p>Confidence: {_e('; '.join(confidence) or 'none')}. Search ended: {stopped}.</p>")
    steps = document.get("steps", [])
    rows = []
    for n, s in enumerate(steps, start=1):
        figs = key_figures(s) if "schema" in s else {}
        verdict = ("holds" if s.get("passed") else "breaks") + (
            f" (run {s['attempt']})" if s.get("attempt", 1) > 1 else ""
        )
        rows.append(
            [
                str(n),
                f"{s['rate']:g}",
                verdict,
                *(fmt(figs.get(k)) for k, _ in COLUMNS),
                "; ".join(s.get("reasons", [])),
            ]
        )
    header = ["step", "rate", "verdict", *(t for _, t in COLUMNS), "why"]
    body += ["<h2>Steps (latencies in ms)</h2>", _table(header, rows, text_columns=0)]
    measured = sorted((s for s in steps if "schema" in s), key=lambda s: float(s["rate"]))
    body += [
        "<h2>Figures</h2>",
        _img(slo_against_rate(measured, slos, title), "SLO figures against the rate"),
    ]
    body += _sweep_figures(measured, title, "capacity steps")
    if measured:
        note = "<p>Of the first step; the steps differ only in their rate.</p>"
        body.append(_config_section(steps[0].get("config", {}), note))
    return _page(title, body)
