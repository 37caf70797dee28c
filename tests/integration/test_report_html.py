"""`redodiff report` renders a real divergence; headless Chromium shows the highlighted bytes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main

HIGHLIGHT = (255, 77, 77)  # .d: bytes that differ and survive the masks


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed (./dev installs Debian's chromium package)")


def screenshot(html: Path, png: Path, profile: Path) -> None:
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1400,1400",
         f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=120,
    )


def test_html_report_of_a_real_divergence(mutant_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(mutant_bundle), "--html", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "survives masks" in page and "t_ctid" in page
    assert f"redodiff replay {mutant_bundle}" in page
    assert "<script" not in page and "http" not in page.split("</style>")[0]  # self-contained
    png = tmp_path / "report.png"
    screenshot(out, png, tmp_path / "chromium-profile")
    img = Image.open(png).convert("RGB")
    red = sum(n for n, px in img.getcolors(maxcolors=1 << 24) or [] if px == HIGHLIGHT)
    assert red > 50, f"only {red} highlight pixels in {png}"  # pytest keeps tmp_path for a human to look at


def test_html_report_of_a_run_directory(mutant_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    res = CliRunner().invoke(main, ["report", str(mutant_corpus), "--html", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "run summary" in page and "page-modifying record types verified" in page
    assert page.count("survives masks") >= 1 and page.count("<h2 id=") >= 2
