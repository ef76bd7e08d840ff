"""Look at the report as a person would: render the HTML in headless Chromium and check the screenshot.

Skipped when no Chromium is installed (``apt-get install -y chromium`` on Debian).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from metaxlm.report import build_report

RESULTS = Path(__file__).parent / "fixtures" / "results"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400, profile: Path | None = None) -> None:
    """Headless Chromium screenshot of a local file (no network, no GPU, throwaway profile)."""
    profile = profile or png.parent / ".chromium-profile"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
                    f"--window-size={width},{height}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@pytest.mark.parametrize("tree", ["full", "partial"])
def test_report_renders_in_chromium(tmp_path, tree):
    from PIL import Image

    html, _ = build_report([RESULTS / tree], tmp_path / "report.html")
    png = tmp_path / "shot.png"
    screenshot(html, png, height=6000)
    img = Image.open(png).convert("RGB")
    assert img.size == (1280, 6000)
    # the page is not blank: it has the dark text of tables and the colours of plots
    colours = img.resize((160, 750)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50
    # the headline sits at the top: some dark pixels (text) within the first screen
    top = img.crop((0, 0, 1280, 300)).convert("L")
    assert top.getextrema()[0] < 80
    # every embedded figure decoded: images are laid out (a broken <img> shows as a tiny icon)
    width_used = img.crop((0, 2000, 1280, 6000)).convert("L").point(lambda p: 255 if p < 250 else 0).getbbox()
    assert width_used is not None and width_used[2] - width_used[0] > 800
