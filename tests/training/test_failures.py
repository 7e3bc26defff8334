"""Training that cannot go on stops with one error naming the cause, keeping its last checkpoint."""

import errno
import json
import os

import numpy as np
import pytest

from liverseg.errors import OutputError, TrainingError
from liverseg.phantoms.training import write_phantoms
from liverseg.training import checkpoints, trainer
from liverseg.training.prepare import prepare
from liverseg.training.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fail_phantoms")
    write_phantoms(directory, 2, (32, 32, 6), seed=5)
    return directory


def _config(data_dir, model_dir, **kw):
    return TrainConfig(
        stage="liver",
        data_dir=str(data_dir),
        model_dir=str(model_dir),
        max_steps=kw.pop("max_steps", 4),
        batch_size=2,
        val_every=0,
        save_every=1,
        log_every=1,
        val_fraction=0.0,
        **kw,
    )


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(
    phantoms, tmp_path, monkeypatch
):
    real = trainer.TrainStep

    class BreaksAtThree(real):
        calls = 0

        def __call__(self, *args, **kwargs):
            metrics = super().__call__(*args, **kwargs)
            BreaksAtThree.calls += 1
            if BreaksAtThree.calls == 3:
                metrics = {**metrics, "loss_total": float("nan")}
            return metrics

    monkeypatch.setattr(trainer, "TrainStep", BreaksAtThree)
    model_dir = tmp_path / "model"
    with pytest.raises(TrainingError, match=r"loss became nan at update 3"):
        train(_config(phantoms, model_dir))
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)][-1] == "ckpt-00000002"
    assert json.loads((model_dir / "train_state.json").read_text())["step"] == 2
    assert not (model_dir / "model.weights.h5").exists()  # no final model from a broken run


def test_a_corrupt_tfrecord_shard_is_named(phantoms, tmp_path):
    prepared = tmp_path / "prepared"
    summary = prepare(phantoms, prepared, "liver", examples_per_shard=2)
    assert len(summary["shards"]) >= 2
    bad = prepared / summary["shards"][1]
    raw = bytearray(bad.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(np.random.default_rng(0).integers(0, 256, 64, np.uint8))
    bad.write_bytes(bytes(raw))
    with pytest.raises(TrainingError) as err:
        train(_config(prepared, tmp_path / "model", max_steps=20))
    message = str(err.value)
    assert message.startswith(f"{bad}: corrupt TFRecord shard") and "\n" not in message


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(
    phantoms, tmp_path, monkeypatch
):
    real_savez = np.savez
    calls = []

    def savez(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            _disk_full()
        return real_savez(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints.np, "savez", savez)
    model_dir = tmp_path / "model"
    with pytest.raises(OutputError, match=r"ckpt-00000002: cannot write the checkpoint \(No space"):
        train(_config(phantoms, model_dir))
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)] == ["ckpt-00000001"]
    assert json.loads((model_dir / "train_state.json").read_text())["step"] == 1
    assert not [n for n in os.listdir(model_dir) if n.startswith(".")]
    assert not (model_dir / "model.weights.h5").exists()
    monkeypatch.setattr(checkpoints.np, "savez", real_savez)
    summary = train(_config(phantoms, model_dir, max_steps=2))  # space freed: resumes
    assert summary["step"] == 2 and (model_dir / "model.weights.h5").exists()


def test_a_full_disk_when_saving_the_final_model_is_one_error(phantoms, tmp_path, monkeypatch):
    import liverseg.models

    monkeypatch.setattr(liverseg.models, "save_model", _disk_full)
    model_dir = tmp_path / "model"
    with pytest.raises(OutputError, match=r"No space left on device\) after update 2"):
        train(_config(phantoms, model_dir, max_steps=2))
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)][-1] == "ckpt-00000002"
