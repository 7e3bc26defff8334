"""The results page: self-contained, with visible overlays (and, with Chromium, rendered)."""

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from liverseg.data import nifti
from liverseg.evaluation.html_report import LIVER_RGB, TUMOR_RGB, RunPage, write_run_report


@pytest.fixture
def run_dir(tmp_path):
    hu = np.full((48, 40, 10), -80, np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    labels[8:40, 6:34, 2:8] = 1
    hu[labels == 1] = 120
    labels[18:26, 14:22, 3:6] = 2
    hu[labels == 2] = 30
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    ct = nifti.save_ct(tmp_path / "volume-4.nii.gz", hu, affine)
    volume = nifti.load_ct(ct)
    seg = nifti.save_labels(tmp_path / "segmentation-4.nii.gz", labels, volume)
    return tmp_path, [(seg, ct)]


def _images(page: str) -> list[np.ndarray]:
    found = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def _has(image: np.ndarray, rgb) -> bool:
    return bool(np.all(image == np.array(rgb, np.uint8), axis=-1).any())


def test_page_is_self_contained_and_shows_both_outlines(run_dir):
    directory, cases = run_dir
    page_path = write_run_report(directory / "report.html", cases, {"postprocessing": "x"})
    page = page_path.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing fetched
    assert "<link" not in page and "@import" not in page
    images = _images(page)
    assert len(images) == 6  # the six slices holding liver
    assert all(_has(im, LIVER_RGB) for im in images)
    assert sum(_has(im, TUMOR_RGB) for im in images) == 3
    assert "Tumour burden" in page and "postprocessing" in page
    assert "<h2>4 (volume-4.nii.gz)</h2>" in page


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="headless Chromium not installed (Debian package chromium)",
)
def test_page_renders_in_headless_chromium(run_dir, tmp_path):
    directory, cases = run_dir
    page = write_run_report(directory / "report.html", cases)
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--force-device-scale-factor=1",
            "--window-size=900,700",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), result.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert _has(image, LIVER_RGB) and _has(image, TUMOR_RGB)


def test_statistics_and_page_together_read_each_case_once(run_dir, monkeypatch):
    """With --statistics and --report_html the page is built from the cases the statistics load."""
    from liverseg.evaluation import statistics

    directory, cases = run_dir
    alone = write_run_report(directory / "alone.html", cases).read_text()
    loads = []
    real = statistics.load_case
    monkeypatch.setattr(statistics, "load_case", lambda *a: loads.append(a) or real(*a))
    page = RunPage()
    statistics.write_run_statistics(cases, directory, each=page.add)
    assert len(loads) == len(cases)
    assert page.write(directory / "report.html").read_text() == alone
