"""SavedModel export: fresh-process reload, saved_model_cli, input checks, atomic writes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from liverseg.data.preprocess import HU_WINDOW, intensity_range, window_and_scale
from liverseg.errors import ConfigError, OutputError
from liverseg.export import (
    HU_INPUT,
    SCALED_INPUT,
    SCALED_SIGNATURE,
    SERVING_SIGNATURE,
    ServingModule,
    check_export_destination,
    export_saved_model,
)
from liverseg.export import saved_model as saved_model_lib
from liverseg.models import ModelConfig, build_ds_sffnet

HERE = Path(__file__).resolve().parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
SIZE = 32


def ct_like(rng, shape):
    """HU slices as abdominal CT has them: soft tissue, air outside the body, bone."""
    hu = rng.normal(60.0, 90.0, shape).astype(np.float32)
    hu[..., :4, :, :] = -1000.0 + rng.normal(0.0, 20.0, hu[..., :4, :, :].shape)
    hu[..., 12:16, 12:16, :] = rng.uniform(300.0, 1200.0, hu[..., 12:16, 12:16, :].shape)
    return hu


def keras_logits(model, scaled):
    return model(scaled, training=False)["fuse"].numpy()


@pytest.fixture(scope="module")
def liver(tmp_path_factory):
    model = build_ds_sffnet("liver", seed=3)
    path = export_saved_model(model, tmp_path_factory.mktemp("export") / "liver")
    return model, path


@pytest.fixture(scope="module")
def served(liver, tmp_path_factory):
    """Runs serving_client.py in a fresh process on good and bad inputs."""
    _, path = liver
    rng = np.random.default_rng(5)
    work = tmp_path_factory.mktemp("client")
    volume = ct_like(rng, (2, SIZE, SIZE, 3))
    narrow = rng.uniform(-100.0, 200.0, (1, SIZE, SIZE + 8, 3)).astype(np.float32)
    good = np.zeros((1, SIZE, SIZE, 3), np.float32)
    inputs = {
        f"{SERVING_SIGNATURE}.volume": volume,
        f"{SCALED_SIGNATURE}.narrow": window_and_scale(narrow),
        f"{SERVING_SIGNATURE}.bad_rank3": good[0],
        f"{SERVING_SIGNATURE}.bad_rank5": good[None],
        f"{SERVING_SIGNATURE}.bad_channels": np.zeros((1, SIZE, SIZE, 4), np.float32),
        f"{SERVING_SIGNATURE}.bad_nan": np.where(
            np.arange(SIZE)[:, None, None] == 7, np.nan, good
        ).astype(np.float32),
        f"{SERVING_SIGNATURE}.bad_inf": np.full_like(good, np.inf),
        f"{SERVING_SIGNATURE}.bad_small": np.zeros((1, 8, SIZE, 3), np.float32),
        f"{SERVING_SIGNATURE}.bad_empty": np.zeros((0, SIZE, SIZE, 3), np.float32),
        f"{SCALED_SIGNATURE}.bad_hounsfield": volume[:1],
    }
    np.savez(work / "in.npz", **inputs)
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "serving_client.py"),
            str(path),
            str(work / "in.npz"),
            str(work / "out.npz"),
            str(work / "result.json"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(work / "out.npz", allow_pickle=False) as out:
        outputs = dict(out)
    return dict(
        inputs=inputs,
        outputs=outputs,
        volume=volume,
        narrow=narrow,
        **json.loads((work / "result.json").read_text()),
    )


def test_window_in_graph_is_the_per_volume_scaling_of_a_volume_spanning_the_window():
    hu = ct_like(np.random.default_rng(1), (2, SIZE, SIZE, 3))
    assert intensity_range(hu) == HU_WINDOW
    in_graph = saved_model_lib.hu_to_scaled(tf.constant(hu)).numpy()
    np.testing.assert_array_equal(in_graph, window_and_scale(hu))
    edges = np.array([-2000, -150, -149.5, 0, 50, 249.75, 250, 3000], np.float32)
    np.testing.assert_allclose(
        saved_model_lib.hu_to_scaled(tf.constant(edges)).numpy(),
        [0, 0, 0.31875, 95.625, 127.5, 254.840625, 255, 255],
        rtol=1e-6,
    )


def test_fresh_process_matches_keras_on_hounsfield_input(liver, served):
    model, _ = liver
    assert served["input_names"] == {
        SERVING_SIGNATURE: [HU_INPUT],
        SCALED_SIGNATURE: [SCALED_INPUT],
    }
    # The original scales by the volume's clipped min and max; this volume spans the window.
    expected = keras_logits(model, window_and_scale(served["volume"]))
    logits = served["outputs"][f"{SERVING_SIGNATURE}.volume.logits"]
    probabilities = served["outputs"][f"{SERVING_SIGNATURE}.volume.probabilities"]
    assert logits.dtype == probabilities.dtype == np.float32
    assert logits.shape == probabilities.shape == (2, SIZE, SIZE, 3)
    assert np.abs(logits - expected).max() < 1e-5
    assert np.abs(probabilities - 1 / (1 + np.exp(-expected.astype(np.float64)))).max() < 1e-6


def test_scaled_signature_reproduces_per_volume_scaling_of_a_narrow_volume(liver, served):
    model, _ = liver
    scaled = window_and_scale(served["narrow"])
    assert scaled.min() == 0 and scaled.max() == pytest.approx(255)
    logits = served["outputs"][f"{SCALED_SIGNATURE}.narrow.logits"]
    assert logits.shape == (1, SIZE, SIZE + 8, 3)
    assert np.abs(logits - keras_logits(model, scaled)).max() < 1e-5


@pytest.mark.parametrize(
    "case, message",
    [
        ("bad_rank3", "ct_slices must have rank 4"),
        ("bad_rank5", "ct_slices must have rank 4"),
        ("bad_channels", "ct_slices must have 3 channels"),
        ("bad_nan", "ct_slices holds NaN or infinite values"),
        ("bad_inf", "ct_slices holds NaN or infinite values"),
        ("bad_small", "ct_slices height and width must be at least 16"),
        ("bad_empty", "ct_slices must hold at least one image"),
    ],
)
def test_bad_input_is_rejected_in_the_graph(served, case, message):
    error = served["errors"][f"{SERVING_SIGNATURE}.{case}"]
    assert error["type"] == "InvalidArgumentError"
    assert message in error["message"]


def test_scaled_signature_rejects_hounsfield_units(served):
    error = served["errors"][f"{SCALED_SIGNATURE}.bad_hounsfield"]
    assert error["type"] == "InvalidArgumentError"
    assert "scaled_slices must lie in 0..255" in error["message"]
    assert set(served["errors"]) == {k for k in served["inputs"] if ".bad_" in k}


def test_export_stores_each_weight_once_and_metadata(liver):
    model, path = liver
    assert sorted(os.listdir(path.parent)) == ["1"]
    stored = [
        name
        for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))
        if name.startswith("model_variables/")
    ]
    assert len(stored) == len(model.weights) == 79
    meta = json.loads((path / saved_model_lib.METADATA_FILE).read_text())
    assert meta["model_config"] == ModelConfig("liver").to_dict()
    assert meta["hu_window"] == list(HU_WINDOW)
    assert os.stat(path).st_mode & 0o055 == 0o055 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _saved_model_cli(*args):
    result = subprocess.run(
        ["saved_model_cli", *args], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_show_lists_the_documented_signatures(liver):
    _, path = liver
    text = _saved_model_cli("show", "--dir", str(path), "--all")
    for key, input_name in ((SERVING_SIGNATURE, HU_INPUT), (SCALED_SIGNATURE, SCALED_INPUT)):
        block = text.split(f"signature_def['{key}']:")[1].split("signature_def[")[0]
        assert re.search(
            rf"inputs\['{input_name}'\] tensor_info:\s+dtype: DT_FLOAT\s+"
            r"shape: unknown_rank",
            block,
        )
        for output in ("logits", "probabilities"):
            assert re.search(
                rf"outputs\['{output}'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                r"shape: \(-1, -1, -1, 3\)",
                block,
            )
        assert "Method name is: tensorflow/serving/predict" in block


@pytest.mark.slow  # saved_model_cli imports TensorFlow and loads the model in a TF1 session
def test_saved_model_cli_run_answers(liver, tmp_path):
    model, path = liver
    hu = np.random.default_rng(2).integers(-1000, 1500, (1, 16, 24, 3))
    _saved_model_cli(
        "run",
        "--dir",
        str(path),
        "--tag_set",
        "serve",
        "--signature_def",
        SERVING_SIGNATURE,
        "--input_exprs",
        f"{HU_INPUT}={hu.tolist()}",
        "--outdir",
        str(tmp_path),
    )
    logits = np.load(tmp_path / "logits.npy", allow_pickle=False)
    expected = keras_logits(model, window_and_scale(hu.astype(np.float32), *HU_WINDOW))
    assert logits.shape == (1, 16, 24, 3)
    assert np.abs(logits - expected).max() < 1e-5
    probabilities = np.load(tmp_path / "probabilities.npy", allow_pickle=False)
    np.testing.assert_allclose(probabilities, tf.sigmoid(expected).numpy(), atol=1e-6)


def test_tumor_export_any_size(tmp_path):
    model = build_ds_sffnet("tumor", seed=4)
    path = export_saved_model(model, tmp_path / "tumor", version=2)
    assert path == tmp_path / "tumor" / "2"
    hu = ct_like(np.random.default_rng(3), (1, 35, 50, 3))
    logits = (
        tf.saved_model.load(str(path))
        .signatures[SERVING_SIGNATURE](ct_slices=tf.constant(hu))["logits"]
        .numpy()
    )
    expected = keras_logits(model, window_and_scale(hu))
    assert logits.shape == (1, 35, 50, 3) and logits.min() >= 0  # original tumour-net ReLU
    assert np.abs(logits - expected).max() < 1e-5


class _StubModule:
    """Stands in for ServingModule where only the file handling is under test."""

    def __init__(self, model):
        del model

    def signature_functions(self):
        return {}


def _fake_save(contents):
    def save(module, directory, signatures):
        Path(directory, "saved_model.pb").write_text(contents)

    return save


def test_overwrite_replaces_a_version_atomically(liver, tmp_path, monkeypatch):
    model, _ = liver
    monkeypatch.setattr(saved_model_lib, "ServingModule", _StubModule)
    monkeypatch.setattr(saved_model_lib.tf.saved_model, "save", _fake_save("first"))
    path = export_saved_model(model, tmp_path / "e", version=3)
    monkeypatch.setattr(saved_model_lib.tf.saved_model, "save", _fake_save("second"))
    with pytest.raises(OutputError, match="version exists; pass --overwrite"):
        export_saved_model(model, tmp_path / "e", version=3)
    assert (path / "saved_model.pb").read_text() == "first"
    (path / "marker").write_text("from the old export")
    assert export_saved_model(model, tmp_path / "e", version=3, overwrite=True) == path
    assert (path / "saved_model.pb").read_text() == "second"
    assert not (path / "marker").exists()
    assert sorted(os.listdir(tmp_path / "e")) == ["3"]


@pytest.mark.slow  # builds three networks
@pytest.mark.parametrize(
    "stage, variant", [("tumor", "paper"), ("liver", "liverseg2017"), ("tumor", "liverseg2017")]
)
def test_serving_graph_matches_keras_for_every_variant(stage, variant):
    model = build_ds_sffnet(stage, variant=variant, seed=6)
    module = ServingModule(model)
    hu = ct_like(np.random.default_rng(4), (1, 17, 40, 3))
    out = module.serve_hu(tf.constant(hu))
    expected = keras_logits(model, window_and_scale(hu))
    assert np.abs(out["logits"].numpy() - expected).max() < 1e-5
    assert len(module.model_variables) == len(model.weights)


def test_failed_export_leaves_nothing(liver, tmp_path, monkeypatch):
    model, _ = liver
    monkeypatch.setattr(saved_model_lib, "ServingModule", _StubModule)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saved_model_lib.tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, tmp_path / "e")
    assert os.listdir(tmp_path / "e") == []


def test_destination_checks(tmp_path):
    export_dir = tmp_path / "e"
    assert check_export_destination(export_dir) == export_dir / "1"
    assert check_export_destination(export_dir, 7) == export_dir / "7"
    for version in (0, -1, True, 1.5, "2"):
        with pytest.raises(ConfigError, match="version must be a positive integer"):
            check_export_destination(export_dir, version)
    (export_dir / "3").mkdir(parents=True)
    (export_dir / "3" / "notes.txt").write_text("not a SavedModel")
    with pytest.raises(OutputError, match="not a SavedModel directory"):
        check_export_destination(export_dir, 3, overwrite=True)
    (export_dir / "4").mkdir()
    (export_dir / "4" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(OutputError, match="pass --overwrite"):
        check_export_destination(export_dir, 4)
    assert check_export_destination(export_dir, 4, overwrite=True) == export_dir / "4"
    (export_dir / "5").mkdir()
    assert check_export_destination(export_dir, 5) == export_dir / "5"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_export_destination(tmp_path / "file")
