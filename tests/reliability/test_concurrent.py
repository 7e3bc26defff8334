"""Two ``infer.py`` processes on one output directory at the same time.

Each output must be complete and valid whichever process wrote it: writes go
to a temporary name and are renamed into place, exclusively unless
``--overwrite``, so neither process ever replaces or truncates the other's
file, and with ``--skip_existing`` a case the other process finished first is
skipped rather than failed.
"""

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tests.reliability import badfiles as bf
from tests.reliability.conftest import ROOT, TOOLS, _env

CASES = 4


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TOOLS / "infer.py"), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=str(ROOT),
    )


@pytest.mark.parametrize("mode", ["--skip_existing", "--overwrite"])
def test_two_processes_on_one_output_directory_leave_only_complete_files(
    tmp_path, tiny_models, mode
):
    liver, tumor = tiny_models
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(CASES):
        bf.write_good_ct(src / f"volume-{i}.nii.gz", seed=i)
    args = (
        f"--input_dir={src}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        f"--tumor_model={tumor}",
        "--write_probabilities",
        mode,
    )
    procs = [_start(*args), _start(*args)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
        assert "Traceback" not in stdout + stderr
        assert "0 failed" in stdout, stdout
    summaries = [stdout.strip().splitlines()[-1] for _, stdout, _ in results]
    written = [int(s.split(" written")[0]) for s in summaries]
    if mode == "--overwrite":
        assert written == [CASES, CASES], summaries
    else:
        assert CASES <= sum(written) <= 2 * CASES, summaries
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.startswith(".")], names  # no temporary file left
    for i in range(CASES):
        labels = nib.load(out / f"segmentation-{i}.nii.gz")
        assert labels.shape == bf.SHAPE
        assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2}
        prob = nib.load(out / f"segmentation-{i}_liver_probability.nii.gz")
        assert np.all(np.isfinite(prob.get_fdata())) and prob.shape == bf.SHAPE
