"""tools/make_phantom.py, run as a user would."""

import numpy as np

from liverseg.data import lits, nifti
from liverseg.phantoms import training as phantom
from tests.tools import helpers as tool_helpers

run = tool_helpers.tool("make_phantom")


def test_make_phantom_cli(tmp_path):
    out = tmp_path / "phantoms"
    args = [
        f"--output_dir={out}",
        "--num_volumes=2",
        "--shape=32,32,8",
        "--seed=4",
        "--start_index=3",
    ]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "segmentation-3.nii.gz",
        "segmentation-4.nii.gz",
        "volume-3.nii.gz",
        "volume-4.nii.gz",
    ]
    cases = lits.discover_cases(out)
    vol, lab = nifti.load_case(cases[0].volume, cases[0].segmentation, dtype=None)
    expected = phantom.make_phantom((32, 32, 8), seed=4, index=3)
    np.testing.assert_array_equal(vol.data, expected.hu)
    np.testing.assert_array_equal(lab.data, expected.labels)

    # Existing outputs: a one-line error, no traceback, files untouched.
    before = (out / "volume-3.nii.gz").read_bytes()
    again = run(*args)
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    assert "volume-3.nii.gz" in again.stderr and "--overwrite" in again.stderr
    assert (out / "volume-3.nii.gz").read_bytes() == before

    bad = run(f"--output_dir={out}", "--shape=32,32")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "X,Y,Z" in bad.stderr
