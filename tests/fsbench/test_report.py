"""fsbench report: one self-contained HTML page, checked as a person sees it in headless Chromium.

The rendered page must show every number of the result table, decode every curve image, and fit
a phone's width (wide tables scroll inside their own box). The Chromium tests skip where no
chromium is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting
from fsbench.report import build_report
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_loader
from fsbench.tables import load_results, results_frame
from PIL import Image

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")

# A page that shows the report in a WIDTH-pixel frame (a phone's, or a desktop's) and, once the
# report has loaded, writes what it shows as JSON into its own DOM for --dump-dom. (Chromium's
# headless window is never narrower than 500 px; a frame is.)
HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="REPORT" style="width:WIDTHpx;height:844px;border:0"></iframe>
<script>
const frame = document.getElementById("f");
frame.addEventListener("load", () => {
  const d = frame.contentDocument;
  const probe = {
    images: [...d.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    text: d.body.innerText,
    width: d.documentElement.scrollWidth,
    viewport: d.defaultView.innerWidth,
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(probe);
  document.body.appendChild(pre);
});
</script></body></html>"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Three small finished runs: protonet (a published cell), mlp on MNIST-1D (a cell of the
    mnist1d source table) with a deviation, and one whose curve.png is gone (drawn again)."""
    root = tmp_path_factory.mktemp("runs")
    load = synthetic_loader(size=16, classes=10, per_class=6)
    small = dict(way=5, shot=1, query=2, train_way=5, hidden=4, episodes=6, iterations=6)
    run_setting(
        resolve_settings("protonet", "omniglot", small), root / "a", loader=load, quiet=True
    )
    mlp = resolve_settings("mlp", "mnist1d", dict(iterations=8, batch_size=16, seed=42))
    run_setting(mlp, root / "b", loader=load, quiet=True)
    run_setting({**mlp, "seed": 1}, root / "c", loader=load, quiet=True)
    (root / "c" / "curve.png").unlink()
    return root


def decoded_sizes(page: str) -> list[tuple[int, int]]:
    """(width, height) of every image of the page, each decoded in full by Pillow."""
    sizes = []
    for data in re.findall(r'src="data:image/png;base64,([^"]*)"', page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            img.load()  # raises on a truncated or damaged PNG
            sizes.append(img.size)
    return sizes


def table_numbers(root: Path) -> list[str]:
    """'ours ± CI' of every row of the result table, as the page must show them."""
    df = results_frame(load_results([root]))
    return [f"{r['ours_%']:.2f} ± {r['ci95_%']:.2f}" for r in df.to_dict("records")]


def test_page_is_self_contained_and_holds_the_tables(runs, tmp_path):
    page = build_report([runs])
    assert all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page)
    )
    assert len(re.findall(r"<img ", page)) == 3  # the removed curve was drawn again
    assert decoded_sizes(page) == [(1000, 360)] * 3
    assert "href=" not in page and "<link" not in page and "url(" not in page
    assert "<script" not in page and "@import" not in page
    for number in table_numbers(runs):
        assert number in page
    assert "98.8" in page  # the published ProtoNets 5-way 1-shot Omniglot number
    assert "Source tables" in page and "Greydanus 2020" in page  # the mnist1d table's layout
    assert '<span class="mark">*</span>' in page  # runs shorter than their presets
    assert "iterations</code> 8 (preset 6001)" in page
    assert build_report([runs]) == page  # same results, same bytes


def render(page: Path, width: int, height: int, *args: str) -> subprocess.CompletedProcess:
    """Chromium, headless and offline, on a file; --dump-dom output in stdout."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--hide-scrollbars", "--allow-file-access-from-files",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--virtual-time-budget=10000", *args,
            page.resolve().as_uri(),
        ]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@needs_chromium
@pytest.mark.parametrize("width", [390, 1280])
def test_rendered_page_shows_the_numbers_and_every_image(runs, tmp_path, width):
    out = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["report", str(runs), "--out", str(out)])
    assert r.exit_code == 0 and r.output.strip() == f"wrote {out.resolve()}", r.output
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.replace("REPORT", out.name).replace("WIDTH", str(width)))
    done = render(harness, 1400, 900, "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    probe = json.loads(html.unescape(found.group(1)))
    assert len(probe["images"]) == 3
    for complete, w, h in probe["images"]:
        assert complete and w > 0 and h > 0
    assert [(w, h) for _, w, h in probe["images"]] == decoded_sizes(out.read_text())
    text = probe["text"]
    for number in table_numbers(runs):
        assert number in text
    assert "98.8" in text and "accuracy" in text
    assert probe["viewport"] == width
    assert probe["width"] <= width  # the page fits: wide tables scroll in their own box


@needs_chromium
def test_screenshot_on_a_phone_shows_a_page(runs, tmp_path):
    out = tmp_path / "report.html"
    out.write_text(build_report([runs]))
    shot = tmp_path / "phone.png"
    render(out, 390, 844, f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (844, 390)
    assert (pixels < 128).mean() > 0.01  # text drawn, not a blank page


def test_bad_input_is_one_error_line(runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(
        main, ["report", str(runs), str(empty), "--out", str(tmp_path / "r.html")]
    )
    assert_one_line_error(r, "no result.json", str(empty))
    assert not (tmp_path / "r.html").exists()
    existing = tmp_path / "old.html"
    existing.write_text("keep")
    r = CliRunner().invoke(main, ["report", str(runs), "--out", str(existing)])
    assert_one_line_error(r, "--overwrite")
    assert existing.read_text() == "keep"
    r = CliRunner().invoke(main, ["report", str(runs), "--out", str(tmp_path / "r.txt")])
    assert_one_line_error(r, ".html")
