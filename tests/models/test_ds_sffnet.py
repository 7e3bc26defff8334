"""Structure of the Keras networks: counts, names, flags, init, shapes, tracing."""

import functools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from liverseg.errors import ConfigError
from liverseg.models import OUTPUT_NAMES, ModelConfig, build_ds_sffnet
from liverseg.models.layers import bilinear_kernel

DS_COUNTS = dict(
    total=15_313_055, trainable=14_945_743, non_trainable=367_312, weights=79, transposed=11
)
PARENT_COUNTS = dict(
    total=15_278_303, trainable=14_917_903, non_trainable=360_400, weights=52, transposed=8
)


@functools.cache
def model_for(stage, variant, seed=0):
    return build_ds_sffnet(stage, variant=variant, seed=seed)


def _size(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.mark.parametrize("stage", ["liver", "tumor"])
@pytest.mark.parametrize("variant", ["original", "paper", "liverseg2017"])
def test_parameter_counts(stage, variant):
    model = model_for(stage, variant)
    counts = PARENT_COUNTS if variant == "liverseg2017" else DS_COUNTS
    assert model.count_params() == counts["total"]
    assert _size(model.trainable_weights) == counts["trainable"]
    assert _size(model.non_trainable_weights) == counts["non_trainable"]
    assert len(model.weights) == counts["weights"]
    transposed = [l for l in model.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert len(transposed) == counts["transposed"]
    assert all(not l.trainable and not l.use_bias for l in transposed)
    frozen = {l.name for l in model.layers if l.weights and not l.trainable}
    assert frozen == {l.name for l in transposed}
    assert model.name == ModelConfig(stage, 3, variant).model_name


def test_layer_names_follow_original_scopes():
    names = {layer.name for layer in model_for("tumor", "original").layers}
    expected = {
        f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)
    }
    expected |= {"conv2_2_16", "conv3_3_16", "conv4_3_16", "conv5_3_16", "upscore-fuse"}
    for k in (2, 3, 4, 5):
        expected |= {
            f"side_{k}_br_1",
            f"side_{k}_br_2",
            f"score-dsn_{k}",
            f"score-dsn_{k}-up",
            f"score-multi{k}-up",
        }
    expected |= {"side_3_up", "side_4_up", "side_5_up"}
    expected |= {f"add_up_{j}_br_{i}" for j in (1, 2) for i in (1, 2)}
    assert expected <= names
    parent = {layer.name for layer in model_for("tumor", "liverseg2017").layers}
    assert not any("br_" in n or n.startswith(("side_", "add_up")) for n in parent)


RELU_HEADS = {
    "add_up_1_br_2",
    "add_up_2_br_2",
    "score-dsn_2",
    "score-dsn_3",
    "score-dsn_4",
    "score-dsn_5",
    "upscore-fuse",
}


@pytest.mark.parametrize(
    "stage, variant, relu_expected",
    [
        ("tumor", "original", True),
        ("tumor", "paper", False),
        ("liver", "original", False),
        ("liver", "paper", False),
        ("tumor", "liverseg2017", False),
    ],
)
def test_head_relus_only_in_original_tumour_net(stage, variant, relu_expected):
    model = model_for(stage, variant)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        activation = layer.get_config()["activation"]
        if layer.name in RELU_HEADS:
            assert activation == ("relu" if relu_expected else "linear"), layer.name
        elif (
            layer.name.startswith("conv")
            and not layer.name.endswith("_16")
            or layer.name.endswith("_br_1")
        ):
            assert activation == "relu", layer.name
        else:
            assert activation == "linear", layer.name


@pytest.mark.parametrize("variant", ["original", "paper"])
def test_initialisation(variant):
    model = model_for("tumor", variant)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kernel = layer.kernel.numpy()
            bilinear = bilinear_kernel(kernel.shape[0], kernel.shape[2])
            if "-up" in layer.name or variant == "paper":
                np.testing.assert_array_equal(kernel, bilinear, err_msg=layer.name)
            else:  # original: side_k_up frozen at its N(0, 0.001) init
                assert 0.0008 < kernel.std() < 0.0012 and abs(kernel.mean()) < 1e-4, layer.name
                assert not np.allclose(kernel, np.transpose(kernel, (0, 1, 3, 2)))
        elif isinstance(layer, keras.layers.Conv2D):
            np.testing.assert_array_equal(layer.bias.numpy(), 0.0, err_msg=layer.name)
            if not (layer.name.startswith("conv") and not layer.name.endswith("_16")):
                assert 0.0007 < layer.kernel.numpy().std() < 0.0013, layer.name


def test_seed_makes_initialisation_reproducible():
    a = build_ds_sffnet("liver", seed=7)
    b = build_ds_sffnet("liver", seed=7)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)


@pytest.mark.parametrize(
    "stage, variant, height, width",
    [
        ("tumor", "original", 33, 47),
        ("tumor", "paper", 16, 16),
        ("tumor", "liverseg2017", 17, 31),
        ("liver", "original", 48, 64),
        ("liver", "original", 33, 47),
        ("liver", "paper", 16, 23),
    ],
)
def test_output_shapes_any_size(stage, variant, height, width):
    model = model_for(stage, variant)
    out = model(np.random.default_rng(0).uniform(0, 255, (2, height, width, 3)).astype("float32"))
    assert set(out) == set(OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        assert tuple(out[name].shape) == (2, height, width, 3), name
        assert np.all(np.isfinite(out[name].numpy()))


def test_number_slices_sets_output_channels():
    model = build_ds_sffnet("tumor", number_slices=1)
    out = model(np.zeros((1, 32, 40, 3), np.float32))
    assert all(tuple(out[n].shape) == (1, 32, 40, 1) for n in OUTPUT_NAMES)


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_eager_and_tf_function_agree(stage):
    model = model_for(stage, "original")
    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    rng = np.random.default_rng(1)
    for height, width in ((32, 32), (33, 47)):
        x = rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32)
        eager, traced = model(x, training=False), fn(x)
        for name in OUTPUT_NAMES:
            np.testing.assert_allclose(
                traced[name].numpy(),
                eager[name].numpy(),
                rtol=1e-6,
                atol=1e-6 * np.abs(eager[name]).max(),
                err_msg=name,
            )


def test_bfloat16_policy_builds_and_runs():
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        model = build_ds_sffnet("tumor", seed=1)
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(w.dtype == "float32" for w in model.weights)
    out = model(np.random.default_rng(2).uniform(0, 255, (1, 33, 40, 3)).astype("float32"))
    assert out["fuse"].dtype == tf.bfloat16 and tuple(out["fuse"].shape) == (1, 33, 40, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stage="kidney"),
        dict(stage="liver", variant="new"),
        dict(stage="liver", number_slices=0),
        dict(stage="liver", number_slices=2.5),
    ],
)
def test_invalid_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        build_ds_sffnet(**kwargs)


def test_model_config_name_and_json_round_trip():
    config = ModelConfig("tumor", 5, "paper")
    assert ModelConfig.from_model_name(config.model_name) == config
    assert ModelConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError):
        ModelConfig.from_model_name("vgg16")
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({"stage": "liver", "extra": 1})
