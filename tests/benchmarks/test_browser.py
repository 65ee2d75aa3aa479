"""The report and the demo page render in a real browser: headless Chromium (Debian's ``chromium``).

Each page is opened as a copy with a small script added that, once the page has
loaded, counts images that failed to decode and tables without rows; Chromium
prints the DOM after load (``--dump-dom``), and the test reads the counts back.
A screenshot of each page must show content, not a blank window.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)"
)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
CHECK = """<script>
window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  var tables = Array.from(document.querySelectorAll('table'));
  var empty = tables.filter(function (t) {
    return t.querySelectorAll('tbody tr').length === 0 || t.getBoundingClientRect().height === 0; });
  var mark = document.createElement('div');
  mark.id = 'nesy-render-check';
  mark.setAttribute('data-result', JSON.stringify({images: images.length, broken: broken.length,
    tables: tables.length, empty: empty.length, svgs: document.querySelectorAll('svg').length,
    height: document.body.scrollHeight}));
  document.body.appendChild(mark);
});
</script>"""


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nesy-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def render_check(page: Path, work: Path) -> dict:
    """Load a copy of ``page`` with the check script; the counts it left in the DOM."""
    text = page.read_text()
    assert "</body>" in text
    copy = work / f"check_{page.name}"
    copy.write_text(text.replace("</body>", CHECK + "</body>", 1))
    done = _chromium("--virtual-time-budget=10000", "--dump-dom", copy.resolve().as_uri())
    found = re.search(r'id="nesy-render-check" data-result="([^"]*)"', done.stdout)
    assert found, f"the check script did not run; chromium said:\n{done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, png: Path) -> np.ndarray:
    """A 1280x2400 screenshot of ``page`` as an RGB array."""
    _chromium("--window-size=1280,2400", f"--screenshot={png}", page.resolve().as_uri())
    assert png.is_file(), "chromium wrote no screenshot"
    return np.asarray(Image.open(png).convert("RGB"))


def assert_not_blank(pixels: np.ndarray) -> None:
    """Content: many pixels differ from the background, in many colours (text, tables, figures)."""
    background = np.median(pixels.reshape(-1, 3), axis=0)
    differ = np.abs(pixels.astype(int) - background).sum(-1) > 30
    assert differ.mean() > 0.02, f"only {differ.mean():.3%} of the screenshot differs from the background"
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    assert colours > 50, f"the screenshot holds only {colours} colours"


def _check_page(page: Path, work: Path, min_images: int, min_tables: int) -> dict:
    counts = render_check(page, work)
    assert counts["broken"] == 0, counts
    assert counts["empty"] == 0, counts
    assert counts["images"] + counts["svgs"] >= min_images, counts
    assert counts["tables"] >= min_tables, counts
    assert_not_blank(screenshot(page, work / f"{page.stem}.png"))
    return counts


def test_bench_report_renders_every_table_and_image(tiny_bench, tmp_path):
    out, results = tiny_bench
    counts = _check_page(out / "report.html", tmp_path, min_images=1, min_tables=3)
    assert counts["height"] > 500


def test_demo_page_renders_every_table_and_image(reduced_demo, tmp_path):
    out, summary = reduced_demo
    _check_page(out / "index.html", tmp_path, min_images=4, min_tables=6)


def test_the_check_finds_a_broken_image_and_an_empty_table(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><p>text</p><img src=\"data:image/png;base64,AAAA\"><table><thead><tr><th>x</th>"
                    "</tr></thead><tbody></tbody></table></body></html>")
    counts = render_check(page, tmp_path)
    assert counts["broken"] == 1 and counts["empty"] == 1


def test_committed_quick_report_renders(tmp_path):
    page = Path(__file__).resolve().parents[2] / "docs" / "results" / "bench-all" / "report.html"
    if not page.is_file():
        pytest.skip(f"no committed report at {page}")
    counts = _check_page(page, tmp_path, min_images=10, min_tables=12)
    assert counts["images"] == page.read_text().count("<img ")
