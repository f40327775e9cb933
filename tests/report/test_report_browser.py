"""`simstudy report` rendered in headless Chromium (marker ``report``; ``pytest -m report -n0``).

Two real studies with MCMC estimators (the smoke study, and a tiny latent interaction study on
the Gibbs sampler); each report is opened from ``file://`` with networking off, its DOM dumped
(the report's inline script marks ``data-images-loaded="true"`` once every image has a
``naturalWidth`` above 0) and a screenshot taken, which must show the figures: many distinct
colours, and the blue of the first estimator's lines. Installs nothing: without
``/usr/bin/chromium`` (Debian's ``chromium`` package) the tests are skipped.
Set ``SIMSTUDY_REPORT_SCREENSHOTS=DIR`` to keep the screenshots there.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simstudy.cli import main

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.report,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt install chromium)"),
]
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--virtual-time-budget=5000",
)
#: study name → overrides of a small run of it (in this process).
STUDIES = {
    "missing_x_smoke": ("+experiment=smoke", "executor=synchronous"),
    "latent_tiny": (
        "study=latent_interaction",
        "study.name=latent_tiny",
        "study.reps=4",
        "study.factors.N=[100,200]",
        "sampler.warmup=100",
        "sampler.draws=200",
        "sampler.vectorize=4",
        "executor.batch_size=4",
        "executor=synchronous",
    ),
}
#: matplotlib's first tab10 colour: the first estimator's lines and markers.
TAB_BLUE = (31, 119, 180)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"chromium-profile-{len(list(tmp.glob('chromium-profile-*')))}"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _colours(png: Path) -> tuple[int, int]:
    """Distinct colours of a screenshot, and its pixels within 12 of matplotlib's blue."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    blue = sum(
        n for n, c in colours if all(abs(a - b) <= 12 for a, b in zip(c, TAB_BLUE, strict=True))
    )
    return len(colours), blue


@pytest.mark.parametrize("study", STUDIES)
def test_report_renders_with_every_image_in_chromium(tmp_path, study):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            main(["run", f"results_dir={tmp_path}", "executor.dashboard=false", *STUDIES[study]])
            == 0
        )
        assert main(["report", str(tmp_path / study)]) == 0
    report = tmp_path / study / "report.html"
    html = report.read_text()
    images = html.count("<img ")
    assert images >= 5 and "mcmc_diagnostics" in html

    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-images-loaded="true"' in body.group(0), body.group(0)
    assert f'data-images="{images}"' in body.group(0), body.group(0)

    shot = tmp_path / f"{study}.png"
    rendered = _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri()
    )
    assert rendered.returncode == 0 and shot.exists(), rendered.stderr[-2000:]
    distinct, blue = _colours(shot)
    # The page without its images: 589 colours (anti-aliased text), no pixel of the blue; with
    # them 1,714 (smoke study) and 2,701 (latent), 258 and 803 blue pixels (2026-12-03).
    assert distinct > 1_000, distinct
    assert blue > 100, blue
    keep = os.environ.get("SIMSTUDY_REPORT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
