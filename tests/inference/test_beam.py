"""Batch inference on Apache Beam: the same files as infer.py, failures routed, never fatal."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="Apache Beam is optional: requirements-beam.txt")

from liverseg.data import nifti
from liverseg.inference import RunOptions, resolve_options, run
from liverseg.inference.beam import FAILED_FILE, REPORT_FILE, segment_with_beam
from tests.inference import helpers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four small volumes of different shapes and storage, and one broken file."""
    src = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(11)
    for i, shape in enumerate([(32, 32, 6), (40, 32, 5), (32, 48, 6), (36, 36, 4)]):
        hu = rng.normal(40, 60, shape)
        hu[8:24, 8:24, 1:-1] = rng.normal(110, 15, (16, 16, shape[2] - 2))
        affine = np.diag([0.8, 0.9, 2.5, 1.0]) if i % 2 else np.diag([-0.8, -0.8, 3.0, 1.0])
        helpers.write_ct(src / f"volume-{i}.nii.gz", hu.astype(np.int16), affine)
    (src / "volume-4.nii.gz").write_bytes(b"\x1f\x8b truncated gzip")
    return src


def _options(saved_models):
    liver, tumor = saved_models
    resolved = resolve_options(liver, tumor)
    return dict(
        liver_model=str(liver),
        tumor_model=str(tumor),
        segment_options=resolved.segment_options,
        geometry=resolved.geometry,
    )


def _label_maps(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.glob("segmentation-*.nii.gz"))
        if "_probability" not in p.name
    }


@pytest.mark.slow
def test_beam_plain_and_parts_write_the_same_files(tmp_path, cohort, saved_models, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    kw = _options(saved_models)
    plain = run(cohort, tmp_path / "plain", **kw)
    assert len(plain.written) == 4 and len(plain.failed) == 1
    expected = _label_maps(tmp_path / "plain")
    assert len(expected) == 4
    assert any(nifti.load_labels(tmp_path / "plain" / n).data.any() for n in expected)

    for k in (0, 1):
        run(cohort, tmp_path / "parts", options=RunOptions(num_parts=2, part_id=k), **kw)
    assert _label_maps(tmp_path / "parts") == expected

    counts = segment_with_beam(
        str(cohort),
        str(tmp_path / "beam"),
        **kw,
        pipeline_args=[
            "--runner=DirectRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
    )
    assert counts == {"written": 4, "skipped": 0, "failed": 1}
    assert _label_maps(tmp_path / "beam") == expected
    for name in expected:
        ours = nifti.load_labels(tmp_path / "beam" / name)
        theirs = nifti.load_ct(cohort / name.replace("segmentation", "volume"))
        np.testing.assert_array_equal(ours.affine, theirs.affine)
    failed = json.loads((tmp_path / "beam" / FAILED_FILE).read_text())["cases"]
    assert [Path(c["input"]).name for c in failed] == ["volume-4.nii.gz"]
    assert "volume-4.nii.gz" in failed[0]["error"]
    report = json.loads((tmp_path / "beam" / REPORT_FILE).read_text())["cases"]
    assert [c["status"] for c in report] == ["written"] * 4 + ["failed"]
    leftovers = [p.name for p in (tmp_path / "beam").iterdir() if p.name.startswith(".")]
    assert leftovers == []

    again = segment_with_beam(
        str(cohort),
        str(tmp_path / "beam"),
        **kw,
        run_options=RunOptions(skip_existing=True),
        pipeline_args=["--runner=DirectRunner"],
    )
    assert again == {"written": 0, "skipped": 4, "failed": 1}


def test_beam_staged_through_the_file_systems(tmp_path, cohort, saved_models):
    """The remote-path route (copy in, segment locally, upload, rename) on local files."""
    kw = _options(saved_models)
    run([cohort / "volume-1.nii.gz"], tmp_path / "plain", **kw)
    single = tmp_path / "single"
    single.mkdir()
    (single / "volume-1.nii.gz").write_bytes((cohort / "volume-1.nii.gz").read_bytes())
    (single / "volume-9.nii").write_bytes(b"not a nifti")
    counts = segment_with_beam(
        str(single),
        str(tmp_path / "staged"),
        **kw,
        run_options=RunOptions(write_probabilities=True),
        pipeline_args=["--runner=DirectRunner"],
        stage_locally=True,
    )
    assert counts == {"written": 1, "skipped": 0, "failed": 1}
    assert _label_maps(tmp_path / "staged") == _label_maps(tmp_path / "plain")
    assert (tmp_path / "staged" / "segmentation-1_liver_probability.nii.gz").is_file()
    failed = json.loads((tmp_path / "staged" / FAILED_FILE).read_text())["cases"]
    assert str(single / "volume-9.nii") in failed[0]["error"]
    assert "liverseg-beam-" not in failed[0]["error"]
    assert sorted(p.name for p in (tmp_path / "staged").iterdir() if p.name.startswith(".")) == []
