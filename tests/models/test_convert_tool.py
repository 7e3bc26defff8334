"""tools/convert_checkpoint.py and the library call behind it."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liverseg.errors import CheckpointError, OutputError
from liverseg.models import ModelConfig, build_ds_sffnet, load_model, tf1_variable_map
from liverseg.models.converter import convert_tf1_checkpoint
from tests.models.reference_tf1 import write_tf1_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _write_original(prefix, stage, variant, number_slices, seed=0):
    config = ModelConfig(stage, number_slices, variant)
    model = build_ds_sffnet(stage, number_slices, variant)
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, ref in tf1_variable_map(config).items():
        shape = getattr(model.get_layer(ref.layer), ref.attr).shape
        arrays[name] = rng.normal(0, 0.1, shape).astype(np.float32)
    arrays["global_step"] = np.int64(50000)
    write_tf1_checkpoint(str(prefix), arrays)
    return arrays


def test_convert_library_call_infers_slices_and_refuses_overwrite(tmp_path):
    arrays = _write_original(tmp_path / "ckpt" / "model.ckpt-50000", "tumor", "liverseg2017", 1)
    out = convert_tf1_checkpoint(
        tmp_path / "ckpt", tmp_path / "native", "tumor", variant="liverseg2017"
    )
    model = load_model(out)
    assert model.name == ModelConfig("tumor", 1, "liverseg2017").model_name
    for name, ref in tf1_variable_map(ModelConfig("tumor", 1, "liverseg2017")).items():
        np.testing.assert_array_equal(
            getattr(model.get_layer(ref.layer), ref.attr).numpy(), arrays[name], err_msg=name
        )
    with pytest.raises(OutputError, match="overwrite"):
        convert_tf1_checkpoint(tmp_path / "ckpt", out, "tumor", variant="liverseg2017")
    with pytest.raises(CheckpointError, match="seg_lesion"):
        convert_tf1_checkpoint(
            tmp_path / "ckpt", tmp_path / "other", "liver", variant="liverseg2017"
        )
    assert not (tmp_path / "other").exists()


def _run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=300,
    )


@pytest.mark.slow  # two subprocesses importing TensorFlow
def test_tool_converts_and_reports_errors_in_one_line(tmp_path):
    arrays = _write_original(tmp_path / "seg_liver.ckpt", "liver", "original", 3, seed=1)
    out = tmp_path / "liver_model"
    done = _run_tool(
        f"--tf1_checkpoint={tmp_path / 'seg_liver.ckpt'}", "--stage=liver", f"--output={out}"
    )
    assert done.returncode == 0, done.stderr
    model = load_model(out)
    np.testing.assert_array_equal(
        model.get_layer("side_5_up").kernel.numpy(), arrays["seg_liver/side_5_up/weights"]
    )

    failed = _run_tool(
        f"--tf1_checkpoint={tmp_path / 'seg_liver.ckpt'}",
        "--stage=tumor",
        f"--output={tmp_path / 'tumor_model'}",
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    error_lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "seg_liver.ckpt" in error_lines[0]
    assert not (tmp_path / "tumor_model").exists()
