"""The HTML reports open in a real browser (headless Chromium) with every figure decoded.

Chromium loads a copy of each report with a check appended that, once the page has loaded, records the
decoded size of every image in the page's DOM; ``--dump-dom`` prints it. A screenshot shows the page
renders. ``make test`` installs Debian's ``chromium`` when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trtclient.cli import main
from trtclient.server.launcher import ServerHandle

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures" / "compare"
CHECK = """<script>
window.addEventListener("load", () => {
  const sizes = Array.from(document.images, (img) => [img.alt, img.naturalWidth, img.naturalHeight]);
  document.body.setAttribute("data-images", JSON.stringify(sizes));
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "the HTML tests need Debian's chromium: run `make browser` (or apt-get install chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def decoded_images(report: Path, tmp_path: Path) -> list[list[object]]:
    """(alt, width, height) of every image once Chromium has loaded the report."""
    text = report.read_text(encoding="utf-8")
    # Self-contained and inert: nothing fetched (every src is a data: URI), no script, no link.
    assert not re.search(r'(src|href)="(?!data:)', text) and "<script" not in text and "<link" not in text
    checked = tmp_path / f"checked_{report.name}"
    checked.write_text(text.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    dom = chromium(
        "--virtual-time-budget=10000", "--dump-dom", checked.as_uri(), profile=tmp_path / "p1"
    ).stdout
    match = re.search(r'data-images="([^"]*)"', dom)
    assert match, "the page never finished loading"
    return list(json.loads(match.group(1).replace("&quot;", '"')))


def test_bench_report_opens_with_its_figures(triton_server: ServerHandle, tmp_path: Path) -> None:
    report = tmp_path / "bench.html"
    code = main(["bench", "--url", triton_server.url, "--metrics-url", triton_server.metrics_url,
                 "--concurrency", "4", "--requests", "24", "--max-tokens", "8", "--no-progress",
                 "--html", str(report)])  # fmt: skip
    assert code == 0
    images = decoded_images(report, tmp_path)
    assert [alt for alt, _, _ in images] == [
        "TTFT and E2E over the run",
        "ITL and TPOT distributions",
        "throughput and server state over the run",
    ]
    assert all(width >= 800 and height >= 300 for _, width, height in images)  # type: ignore[operator]
    shot = tmp_path / "bench.png"
    chromium("--window-size=1300,2600", f"--screenshot={shot}", report.as_uri(), profile=tmp_path / "p2")
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000


def test_sweep_report_opens_with_its_curves(tmp_path: Path) -> None:
    from trtclient.bench.html_report import sweep_html, write_html

    document = json.loads((FIXTURES / "sweep_c1_c4.json").read_text())
    report = tmp_path / "sweep.html"
    write_html(sweep_html(document, "sweep of concurrency 1,2,4"), report)
    images = decoded_images(report, tmp_path)
    assert [alt for alt, _, _ in images] == ["throughput latency", "tokens per user"]
    assert all(width >= 800 for _, width, _ in images)  # type: ignore[operator]


def test_capacity_report_opens_with_its_answer_and_curves(tmp_path: Path) -> None:
    from trtclient.bench.html_report import capacity_html, write_html

    document = json.loads((FIXTURES / "capacity_orin.json").read_text())
    report = tmp_path / "capacity.html"
    write_html(capacity_html(document, "capacity at ttft:p99 <= 300 ms"), report)
    assert f"{document['max_rate']:g} req/s meets every SLO" in report.read_text()
    images = decoded_images(report, tmp_path)
    assert [alt for alt, _, _ in images] == [
        "SLO figures against the rate",
        "throughput latency",
        "tokens per user",
    ]
    assert all(width >= 800 for _, width, _ in images)  # type: ignore[operator]
