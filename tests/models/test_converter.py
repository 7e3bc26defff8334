"""The TF1 name map and the checkpoint / ImageNet loaders, including their errors."""

import functools

import h5py
import keras
import numpy as np
import pytest

from liverseg.errors import CheckpointError, ConfigError
from liverseg.models import (
    ModelConfig,
    build_ds_sffnet,
    check_variable_map,
    load_imagenet_vgg16,
    load_tf1_checkpoint,
    tf1_variable_map,
)
from liverseg.models.converter import infer_number_slices, variable_map_problems
from liverseg.models.ds_sffnet import backbone_layer_names
from tests.models.reference_tf1 import write_tf1_checkpoint


@functools.cache
def _shapes(stage, variant="original", number_slices=3):
    """TF1 name -> shape of every variable of a network, read off a built model."""
    model = build_ds_sffnet(stage, number_slices, variant)
    return {
        name: tuple(getattr(model.get_layer(ref.layer), ref.attr).shape)
        for name, ref in tf1_variable_map(ModelConfig(stage, number_slices, variant)).items()
    }


def _random_arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.1, shape).astype(np.float32) for name, shape in shapes.items()}


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("stage", ["liver", "tumor"])
@pytest.mark.parametrize("variant", ["original", "paper", "liverseg2017"])
def test_map_covers_every_weight_exactly_once(stage, variant):
    model = build_ds_sffnet(stage, variant=variant)
    check_variable_map(model)
    mapping = tf1_variable_map(ModelConfig(stage, 3, variant))
    assert len(mapping) == len(model.weights)
    scope = "seg_liver" if stage == "liver" else "seg_lesion"
    assert f"{scope}/conv1/conv1_1/weights" in mapping
    assert f"{scope}/score-dsn_2-up/weights" in mapping
    assert f"{scope}/score-dsn_2-up/biases" not in mapping
    assert (f"{scope}/side_5_up/weights" in mapping) == (variant != "liverseg2017")


def test_map_check_reports_a_model_that_does_not_match():
    parent = build_ds_sffnet("liver", variant="liverseg2017")
    problems = variable_map_problems(parent, ModelConfig("liver"))
    assert any("side_2_br_1" in p for p in problems)
    with pytest.raises(ConfigError, match="side_5_up"):
        check_variable_map(parent, ModelConfig("liver"))
    with pytest.raises(ConfigError, match="not a liverseg network name"):
        check_variable_map(keras.Sequential([keras.layers.Dense(1)], name="other"))


def test_broken_checkpoint_lists_every_problem_and_changes_nothing(tmp_path):
    arrays = _random_arrays(_shapes("liver"))
    del arrays["seg_liver/conv3/conv3_2/biases"]
    del arrays["seg_liver/side_4_up/weights"]
    arrays["seg_liver/extra_layer/weights"] = np.zeros((3,), np.float32)
    arrays["seg_liver/score-dsn_2/weights"] = np.zeros((1, 1, 16, 2), np.float32)
    arrays["seg_liver/conv1/conv1_1/weights/Momentum"] = np.zeros((3, 3, 3, 64), np.float32)
    prefix = str(tmp_path / "model.ckpt")
    write_tf1_checkpoint(prefix, arrays)

    model = build_ds_sffnet("liver")
    before = _weights(model)
    with pytest.raises(CheckpointError) as info:
        load_tf1_checkpoint(model, prefix)
    message = str(info.value)
    assert message.startswith(prefix)
    for name in (
        "seg_liver/conv3/conv3_2/biases",
        "seg_liver/side_4_up/weights",
        "seg_liver/extra_layer/weights",
        "seg_liver/score-dsn_2/weights",
    ):
        assert name in message
    assert "missing (2)" in message and "unexpected (1)" in message
    assert "shape mismatch (1)" in message and "[1, 1, 16, 2]" in message
    assert "Momentum" not in message
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_non_finite_values_are_refused(tmp_path):
    arrays = _random_arrays(_shapes("liver", "liverseg2017"))
    arrays["seg_liver/upscore-fuse/biases"][1] = np.nan
    write_tf1_checkpoint(str(tmp_path / "m"), arrays)
    with pytest.raises(CheckpointError, match="upscore-fuse/biases: non-finite"):
        load_tf1_checkpoint(build_ds_sffnet("liver", variant="liverseg2017"), tmp_path / "m")


def test_wrong_stage_scope_gives_hint(tmp_path):
    write_tf1_checkpoint(str(tmp_path / "m"), _random_arrays(_shapes("tumor", "liverseg2017")))
    with pytest.raises(CheckpointError, match="seg_lesion.*tumor"):
        load_tf1_checkpoint(build_ds_sffnet("liver", variant="liverseg2017"), tmp_path / "m")


def test_variant_family_mismatch_gives_hint(tmp_path):
    write_tf1_checkpoint(str(tmp_path / "m"), _random_arrays(_shapes("liver", "liverseg2017")))
    with pytest.raises(CheckpointError, match="missing \\(27\\).*use variant 'liverseg2017'"):
        load_tf1_checkpoint(build_ds_sffnet("liver", variant="paper"), tmp_path / "m")


def test_checkpoint_path_forms_and_number_slices(tmp_path):
    arrays = _random_arrays(_shapes("tumor", "liverseg2017", 2), seed=4)
    write_tf1_checkpoint(str(tmp_path / "model.ckpt-2000"), arrays)
    for path in (
        tmp_path / "model.ckpt-2000.index",
        tmp_path,
        tmp_path / "model.ckpt-2000.data-00000-of-00001",
    ):
        model = build_ds_sffnet("tumor", 2, "liverseg2017")
        load_tf1_checkpoint(model, path)
        np.testing.assert_array_equal(
            model.get_layer("conv4_2").bias.numpy(), arrays["seg_lesion/conv4/conv4_2/biases"]
        )
    assert infer_number_slices(tmp_path, "tumor") == 2
    with pytest.raises(CheckpointError, match="cannot infer number_slices"):
        infer_number_slices(tmp_path, "liver")


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read TensorFlow checkpoint") as info:
        load_tf1_checkpoint(build_ds_sffnet("liver"), tmp_path / "nothing")
    assert str(info.value).startswith(str(tmp_path / "nothing"))
    (tmp_path / "bad.index").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_tf1_checkpoint(build_ds_sffnet("liver"), tmp_path / "bad")


# ------------------------------------------------------------------ ImageNet VGG-16


def _vgg_arrays(seed=1):
    model = build_ds_sffnet("liver", variant="liverseg2017")
    rng = np.random.default_rng(seed)
    return {
        layer: (
            rng.normal(0, 0.1, model.get_layer(layer).kernel.shape).astype("float32"),
            rng.normal(0, 0.1, model.get_layer(layer).bias.shape).astype("float32"),
        )
        for layer in backbone_layer_names()
    }


def _keras_name(layer):
    block, index = layer[len("conv") :].split("_")
    return f"block{block}_conv{index}"


def _assert_backbone_loaded(model, vgg, untouched_before):
    for layer, (kernel, bias) in vgg.items():
        np.testing.assert_array_equal(model.get_layer(layer).kernel.numpy(), kernel)
        np.testing.assert_array_equal(model.get_layer(layer).bias.numpy(), bias)
    for name, before in untouched_before.items():
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), before)


def _untouched(model):
    return {
        n: model.get_layer(n).kernel.numpy().copy()
        for n in ("conv2_2_16", "side_5_up", "score-dsn_3", "upscore-fuse")
    }


def test_slim_vgg16_checkpoint(tmp_path):
    vgg = _vgg_arrays()
    arrays = {}
    for layer, (kernel, bias) in vgg.items():
        arrays[f"vgg_16/{layer.split('_')[0]}/{layer}/weights"] = kernel
        arrays[f"vgg_16/{layer.split('_')[0]}/{layer}/biases"] = bias
    arrays["vgg_16/fc6/weights"] = np.zeros((7, 7, 8, 4), np.float32)  # shapes do not matter
    arrays["vgg_16/fc8/biases"] = np.zeros((10,), np.float32)
    arrays["global_step"] = np.int64(0)
    write_tf1_checkpoint(str(tmp_path / "vgg_16.ckpt"), arrays, v1_format=True)
    assert (tmp_path / "vgg_16.ckpt").is_file()  # one file, as released by TF-slim
    model = build_ds_sffnet("tumor")
    before = _untouched(model)
    report = load_imagenet_vgg16(model, tmp_path / "vgg_16.ckpt")
    assert len(report.loaded) == 26
    assert set(report.ignored) == {"vgg_16/fc6/weights", "vgg_16/fc8/biases", "global_step"}
    _assert_backbone_loaded(model, vgg, before)

    del arrays["vgg_16/conv5/conv5_3/biases"]
    write_tf1_checkpoint(str(tmp_path / "broken.ckpt"), arrays)
    with pytest.raises(CheckpointError, match="missing \\(1\\): vgg_16/conv5/conv5_3/biases"):
        load_imagenet_vgg16(model, tmp_path / "broken.ckpt")


def test_keras2_legacy_h5_notop(tmp_path):
    """The layout of Keras' released ``vgg16_..._notop.h5`` (Keras 1 weight names)."""
    vgg = _vgg_arrays(seed=2)
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        layer_names = ["input_1"]
        for block in range(1, 6):
            layer_names += [_keras_name(l) for l in vgg if l.startswith(f"conv{block}_")]
            layer_names.append(f"block{block}_pool")
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        f.attrs["backend"] = b"tensorflow"
        for name in layer_names:
            group = f.create_group(name)
            layer = next((l for l in vgg if _keras_name(l) == name), None)
            if layer is None:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            weight_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            group.create_dataset(weight_names[0], data=vgg[layer][0])
            group.create_dataset(weight_names[1], data=vgg[layer][1])
    model = build_ds_sffnet("liver")
    before = _untouched(model)
    report = load_imagenet_vgg16(model, path)
    assert len(report.loaded) == 26 and report.ignored == ()
    _assert_backbone_loaded(model, vgg, before)


def test_keras3_weights_h5_from_keras_vgg16(tmp_path):
    vgg16 = keras.applications.VGG16(weights=None, include_top=False)
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    vgg = {
        layer: tuple(w.numpy() for w in vgg16.get_layer(_keras_name(layer)).weights)
        for layer in backbone_layer_names()
    }
    model = build_ds_sffnet("tumor", variant="paper")
    before = _untouched(model)
    load_imagenet_vgg16(model, path)
    _assert_backbone_loaded(model, vgg, before)


def test_bad_h5_files(tmp_path):
    path = tmp_path / "weird.h5"
    with h5py.File(path, "w") as f:
        f.create_group("something")
    with pytest.raises(CheckpointError, match="not a Keras weights file"):
        load_imagenet_vgg16(build_ds_sffnet("liver"), path)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        group = f.create_group("block1_conv1")
        group.attrs["weight_names"] = [b"a", b"b", b"c"]
        for name in "abc":
            group.create_dataset(name, data=np.zeros((3, 3, 3, 64), np.float32))
    with pytest.raises(CheckpointError, match="block1_conv1"):
        load_imagenet_vgg16(build_ds_sffnet("liver"), path)
