"""The web UI's live token chart: one self-contained page (inline script and SVG, nothing fetched from
the network) that reads ``timeline.json`` next to it every few seconds and draws TTFT p50/p95 and
output tokens/s against the test's elapsed time. No locust or gevent import."""

from __future__ import annotations

__all__ = ["CHART_PAGE"]

CHART_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Token chart - trtclient locust</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}
.note{color:#555;font-size:.9em;margin:0 0 1em}
.chart{margin-bottom:1.5em}
.chart h2{font-size:1em;margin:.2em 0}
svg{border:1px solid #ddd;background:#fcfcfc}
.legend span{display:inline-block;margin-right:1.5em;font-size:.9em}
.swatch{display:inline-block;width:1.5em;height:3px;vertical-align:middle;margin-right:.4em}
</style></head>
<body>
<h1>Token metrics over time</h1>
<p class="note" id="status">waiting for the first point&hellip;</p>
<div class="chart"><h2>TTFT (ms) of the requests reported in each interval</h2>
<div class="legend"><span><i class="swatch" style="background:#1f77b4"></i>p50</span>
<span><i class="swatch" style="background:#d62728"></i>p95</span></div>
<svg id="ttft" width="900" height="260" role="img" aria-label="TTFT p50 and p95 over time"></svg></div>
<div class="chart"><h2>Output tokens/s (all users)</h2>
<div class="legend"><span><i class="swatch" style="background:#2ca02c"></i>output tokens/s</span></div>
<svg id="tokens" width="900" height="260" role="img" aria-label="output tokens per second over time"></svg>
</div>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg";
const M = {left: 70, right: 20, top: 12, bottom: 36};
function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const f of [1, 2, 2.5, 5, 10]) if (v <= f * p) return f * p;
  return 10 * p;
}
function fmt(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function draw(svg, xs, series) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const w = W - M.left - M.right, h = H - M.top - M.bottom;
  const xmax = Math.max(10, xs.length ? xs[xs.length - 1] : 0);
  let ymax = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > ymax) ymax = v;
  ymax = niceMax(ymax * 1.05);
  const X = x => M.left + w * x / xmax, Y = y => M.top + h - h * y / ymax;
  for (let i = 0; i <= 4; i++) {
    const y = ymax * i / 4;
    svg.appendChild(el("line", {x1: M.left, x2: M.left + w, y1: Y(y), y2: Y(y), stroke: "#e3e3e3"}));
    svg.appendChild(el("text", {x: M.left - 6, y: Y(y) + 4, "text-anchor": "end", "font-size": 11}, fmt(y)));
  }
  const xstep = niceMax(xmax / 6);
  for (let x = 0; x <= xmax + 1e-9; x += xstep) {
    svg.appendChild(el("text", {x: X(x), y: M.top + h + 16, "text-anchor": "middle", "font-size": 11},
      x.toFixed(0)));
  }
  svg.appendChild(el("text", {x: M.left + w / 2, y: H - 4, "text-anchor": "middle", "font-size": 11},
    "seconds since the first point"));
  svg.appendChild(el("rect", {x: M.left, y: M.top, width: w, height: h, fill: "none", stroke: "#999"}));
  for (const s of series) {
    let d = "", pen = false;
    s.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      d += (pen ? "L" : "M") + X(xs[i]).toFixed(1) + "," + Y(v).toFixed(1);
      pen = true;
      svg.appendChild(el("circle", {cx: X(xs[i]), cy: Y(v), r: 2.2, fill: s.color}));
    });
    if (d) svg.appendChild(el("path", {d: d, fill: "none", stroke: s.color, "stroke-width": 1.8}));
  }
}
async function refresh() {
  try {
    const r = await fetch("timeline.json", {cache: "no-store"});
    const data = await r.json();
    const pts = data.points;
    const t0 = pts.length ? pts[0].t : 0;
    const xs = pts.map(p => p.t - t0);
    draw(document.getElementById("ttft"), xs, [
      {values: pts.map(p => p.ttft_p50_ms), color: "#1f77b4"},
      {values: pts.map(p => p.ttft_p95_ms), color: "#d62728"}]);
    draw(document.getElementById("tokens"), xs, [
      {values: pts.map(p => p.output_tokens_per_s), color: "#2ca02c"}]);
    const last = pts[pts.length - 1];
    document.getElementById("status").textContent = last
      ? pts.length + " points, one every " + data.interval_s + " s; latest: TTFT p50 " +
        (last.ttft_p50_ms === null ? "-" : fmt(last.ttft_p50_ms)) + " ms, p95 " +
        (last.ttft_p95_ms === null ? "-" : fmt(last.ttft_p95_ms)) + " ms, " +
        fmt(last.output_tokens_per_s) + " output tokens/s"
      : "no points yet: the chart starts when the test does";
  } catch (e) {
    document.getElementById("status").textContent = "cannot read timeline.json: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
"""
