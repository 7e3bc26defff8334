"""Processes killed with SIGKILL while writing: nothing under a final name, and a rerun recovers.

``kill_driver.py`` runs the real tool and kills it from inside the write
(half the bytes of the file are on disk), so no clean-up code can run.
"""

import json
import os
import signal

import nibabel as nib
import numpy as np
import pytest

from liverseg.phantoms.training import write_phantoms
from liverseg.training import checkpoints
from tests.reliability import badfiles as bf
from tests.reliability.conftest import assert_one_line_error, run_killed, run_tool

KILLED = -signal.SIGKILL
TRAIN_ARGS = (  # two updates on two tiny phantoms, a checkpoint after each
    "--stage=liver",
    "--max_steps=2",
    "--batch_size=1",
    "--save_every=1",
    "--val_every=0",
    "--log_every=1",
    "--val_fraction=0",
)


def visible(directory):
    return sorted(n for n in os.listdir(directory) if not n.startswith("."))


def test_infer_killed_while_writing_leaves_nothing_and_a_rerun_redoes_the_case(
    tmp_path, tiny_models
):
    liver, tumor = tiny_models
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in (1, 2, 3):
        bf.write_good_ct(src / f"volume-{i}.nii.gz", seed=i)
    args = (
        f"--input_dir={src}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        f"--tumor_model={tumor}",
        "--crf_targets=",
    )

    killed = run_killed("gzip", "segmentation-2.nii.gz", "infer", *args)
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    # case 2 died mid-write, 3 never ran
    assert visible(out) == ["inference_options.json", "segmentation-1.nii.gz"]
    leftovers = [n for n in os.listdir(out) if n.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".segmentation-2.nii.gz.")
    first = (out / "segmentation-1.nii.gz").read_bytes()

    rerun = run_tool("infer", *args, "--skip_existing")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "2 written, 1 skipped, 0 failed" in rerun.stdout
    assert visible(out) == ["inference_options.json"] + [
        f"segmentation-{i}.nii.gz" for i in (1, 2, 3)
    ]
    assert (out / "segmentation-1.nii.gz").read_bytes() == first
    labels = np.asarray(nib.load(str(out / "segmentation-2.nii.gz")).dataobj)
    assert labels.shape == bf.SHAPE and set(np.unique(labels)) <= {0, 1, 2}


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_infer_stopped_by_a_signal_cleans_up_and_says_so(tmp_path, tiny_models, name, code):
    liver, tumor = tiny_models
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in (1, 2):
        bf.write_good_ct(src / f"volume-{i}.nii.gz", seed=i)
    args = (f"--input_dir={src}", f"--output_dir={out}", f"--liver_model={liver}")
    stopped = run_killed("gzip", "segmentation-2.nii.gz", "infer", *args, signal=name)
    assert_one_line_error(stopped, name, "a rerun completes the work", code=code)
    # the half-written label map was removed: no temporary file, no partial output
    assert sorted(os.listdir(out)) == ["inference_options.json", "segmentation-1.nii.gz"]
    rerun = run_tool("infer", *args, "--skip_existing")
    assert rerun.returncode == 0 and "1 written, 1 skipped, 0 failed" in rerun.stdout


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """A 2-update training run killed while saving checkpoint 2, then rerun."""
    root = tmp_path_factory.mktemp("train_kill")
    data, model_dir = root / "data", root / "model"
    write_phantoms(data, 2, (32, 32, 6), seed=3)
    args = (*TRAIN_ARGS, f"--data_dir={data}", f"--model_dir={model_dir}")
    killed = run_killed("savez", "ckpt-00000002", "train", *args)
    after_kill = {
        "checkpoints": [p.name for p in checkpoints.list_checkpoints(model_dir)],
        "state": json.loads((model_dir / "train_state.json").read_text()),
        "final_model": (model_dir / "model.weights.h5").exists(),
        "half_written": [n for n in os.listdir(model_dir) if n.startswith(".ckpt-00000002.")],
    }
    resumed = run_tool("train", *args)
    return model_dir, killed, after_kill, resumed


@pytest.mark.slow  # two short training runs in subprocesses (~20 s)
def test_training_killed_mid_checkpoint_leaves_only_complete_checkpoints(killed_then_resumed):
    _, killed, after_kill, _ = killed_then_resumed
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert after_kill["checkpoints"] == ["ckpt-00000001"]
    assert after_kill["state"]["step"] == 1 and after_kill["state"]["checkpoint"] == "ckpt-00000001"
    assert not after_kill["final_model"]
    assert len(after_kill["half_written"]) == 1  # hidden, never listed as a checkpoint


@pytest.mark.slow
def test_training_rerun_resumes_from_the_last_good_checkpoint(killed_then_resumed):
    model_dir, _, _, resumed = killed_then_resumed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 1" in resumed.stdout
    assert "trained 2 updates" in resumed.stdout
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)] == [
        "ckpt-00000001",
        "ckpt-00000002",
    ]
    assert json.loads((model_dir / "train_state.json").read_text())["step"] == 2

    from liverseg.models import load_model

    assert load_model(model_dir).name == "liverseg_liver_original_s3"


@pytest.mark.slow
def test_training_metrics_have_no_rows_of_lost_updates(killed_then_resumed):
    model_dir, _, _, _ = killed_then_resumed
    rows = (model_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


@pytest.mark.slow  # up to two short training runs in subprocesses
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_training_stopped_by_a_signal_keeps_complete_checkpoints_and_resumes(tmp_path, name, code):
    data, model_dir = tmp_path / "data", tmp_path / "model"
    write_phantoms(data, 2, (32, 32, 6), seed=3)
    args = (*TRAIN_ARGS, f"--data_dir={data}", f"--model_dir={model_dir}")
    stopped = run_killed("savez", "ckpt-00000002", "train", *args, signal=name)
    assert_one_line_error(stopped, name, "a rerun completes the work", code=code)
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)] == ["ckpt-00000001"]
    assert not [n for n in os.listdir(model_dir) if n.startswith(".")], os.listdir(model_dir)
    assert not (model_dir / "model.weights.h5").exists()
    if name == "SIGINT":
        return  # the rerun is the same for both signals
    resumed = run_tool("train", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 1" in resumed.output
    assert (model_dir / "model.weights.h5").exists()


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_evaluate_stopped_while_writing_its_report_leaves_no_report(tmp_path, name, code):
    gt, pred, out = tmp_path / "gt", tmp_path / "pred", tmp_path / "out"
    for d in (gt, pred):
        d.mkdir()
        for i in (1, 2):
            bf.write_good_labels(d / f"segmentation-{i}.nii.gz")
    args = (f"--gt_dir={gt}", f"--pred_dir={pred}", f"--output={out / 'report.json'}")
    stopped = run_killed("fsync", "report.json", "evaluate", *args, signal=name)
    assert_one_line_error(stopped, name, "a rerun completes the work", code=code)
    assert os.listdir(out) == []  # neither the JSON, nor the CSV written before it, nor a temp
    rerun = run_tool("evaluate", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["report.csv", "report.json"]
    assert len(json.loads((out / "report.json").read_text())["cases"]) == 2
