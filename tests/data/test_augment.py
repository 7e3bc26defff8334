"""On-the-fly augmentation: each transform on known inputs, exact identities,
label/mask invariants, seeding, and the pipeline integration."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from liverseg.data import augment as aug
from liverseg.data import pipeline
from liverseg.data.examples import VolumeRecord, iter_examples
from liverseg.errors import ConfigError

OFF = aug.AugmentOptions.crop_only()
LO, HI = -150.0, 250.0


def _element(hu, label=None, mask=None, lo=LO, hi=HI):
    hu = np.asarray(hu)
    label = (hu > 50).astype(np.uint8) if label is None else label
    mask = np.ones(hu.shape, np.float32) if mask is None else mask
    return {
        "hu": tf.constant(hu),
        "lo": tf.constant(lo, tf.float32),
        "hi": tf.constant(hi, tf.float32),
        "label": tf.constant(label),
        "mask": tf.constant(mask, tf.float32),
    }


def _run(element, opts, patch=None, seed=(1, 2)):
    out = aug.augment_example(element, tf.constant(seed, tf.int64), opts, patch)
    return {k: v.numpy() for k, v in out.items()}


def _only(**changes):
    return dataclasses.replace(OFF, **changes)


def _random_hu(shape, seed=0, low=-140, high=240):
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.int16)


IDENTITY = _only(
    rotation_probability=1.0,
    rotation_degrees=(0.0, 0.0),
    scale_probability=1.0,
    scale_range=(1.0, 1.0),
    anisotropic_scale_probability=0.5,
    elastic_probability=1.0,
    elastic_magnitude=(0.0, 0.0),
    noise_probability=1.0,
    noise_sigma_hu=(0.0, 0.0),
    blur_probability=1.0,
    blur_sigma=(0.0, 0.0),
    brightness_probability=1.0,
    brightness_range=(1.0, 1.0),
    contrast_probability=1.0,
    contrast_range=(1.0, 1.0),
    low_resolution_probability=1.0,
    low_resolution_scale=(1.0, 1.0),
    gamma_invert_probability=1.0,
    gamma_probability=1.0,
    gamma_range=(1.0, 1.0),
)

# Every transform alone, at full probability and default strength.
EACH = {
    "rotation": _only(rotation_probability=1.0, rotation_degrees=(-40.0, 40.0)),
    "scale": _only(scale_probability=1.0),
    "anisotropic": _only(scale_probability=1.0, anisotropic_scale_probability=1.0),
    "elastic": _only(elastic_probability=1.0),
    "mirror": _only(mirror_probability=(1.0, 1.0)),
    "noise": _only(noise_probability=1.0),
    "blur": _only(blur_probability=1.0),
    "brightness": _only(brightness_probability=1.0, brightness_shift_hu=(-20.0, 20.0)),
    "contrast": _only(contrast_probability=1.0),
    "low_resolution": _only(low_resolution_probability=1.0),
    "gamma_invert": _only(gamma_invert_probability=1.0),
    "gamma": _only(gamma_probability=1.0),
}


# ---- options -----------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"rotation_probability": 1.5},
        {"noise_probability": -0.1},
        {"mirror_probability": (0.5,)},
        {"mirror_probability": (0.5, 2.0)},
        {"scale_range": (1.4, 0.7)},
        {"scale_range": (0.0, 1.0)},
        {"gamma_range": (0.0, 1.5)},
        {"blur_sigma": (-1.0, 1.0)},
        {"low_resolution_scale": (0.5, 1.5)},
        {"rotation_degrees": (10.0,)},
        {"contrast_range": (1.0, float("nan"))},
        {"gamma_probability": True},
    ],
)
def test_bad_options_are_refused(changes):
    with pytest.raises(ConfigError, match="augment"):
        aug.AugmentOptions(**changes)


def test_defaults_follow_nnunet_with_mirroring_off():
    d = aug.AugmentOptions()
    assert d.mirror_probability == (0.0, 0.0) and d.elastic_probability == 0.0
    assert (d.rotation_probability, d.scale_probability, d.scale_range) == (0.2, 0.2, (0.7, 1.4))
    assert (d.gamma_probability, d.gamma_invert_probability, d.gamma_range) == (
        0.3,
        0.1,
        (0.7, 1.5),
    )
    assert not OFF.any_spatial and not OFF.any_intensity


def test_bad_patch_size_and_patch_without_augment_are_refused():
    for bad in ((32,), (0, 32), (32.0, 32), "32x32"):
        with pytest.raises(ConfigError, match="patch_size"):
            aug.check_patch_size(bad)
    with pytest.raises(ConfigError, match="only used with augment"):
        pipeline.PipelineOptions(patch_size=(32, 32))
    with pytest.raises(ConfigError, match="AugmentOptions"):
        pipeline.PipelineOptions(augment={"rotation_probability": 0.5})
    assert pipeline.PipelineOptions(augment=OFF, patch_size=[32, 48]).patch_size == (32, 48)
    assert aug.AugmentOptions(mirror_probability=[0.5, 0.0]).mirror_probability == (0.5, 0.0)


# ---- identities ----------------------------------------------------------------
def test_zero_strength_is_exactly_the_identity():
    hu = _random_hu((48, 40, 3), low=-400, high=600)
    mask = np.random.default_rng(1).random((48, 40, 3)).astype(np.float32)
    el = _element(hu, mask=mask)
    want = pipeline.window_scale_tf(hu, LO, HI).numpy()
    for patch in ((48, 40), None):
        out = _run(el, IDENTITY, patch)
        np.testing.assert_array_equal(out["hu"], np.clip(hu, LO, HI).astype(np.float32))
        np.testing.assert_array_equal(pipeline.window_scale_tf(out["hu"], LO, HI).numpy(), want)
        np.testing.assert_array_equal(out["label"], hu > 50)
        np.testing.assert_array_equal(out["mask"], mask)
    # Nothing enabled: not even the clip to the window.
    out = _run(el, OFF)
    np.testing.assert_array_equal(out["hu"], hu.astype(np.float32))
    assert out["hu"].dtype == np.float32 and out["label"].dtype == np.uint8


def test_warped_and_plain_crop_paths_agree_exactly():
    # Rotation by 0 degrees takes the interpolating path; without it the
    # example is cropped and mirrored by indexing. Same seed, same draws.
    hu = _random_hu((48, 40, 3))
    mask = np.random.default_rng(3).random((48, 40, 3)).astype(np.float32)
    el = _element(hu, mask=mask)
    plain = _only(mirror_probability=(0.5, 0.5))
    warped = dataclasses.replace(plain, rotation_probability=1.0, rotation_degrees=(0.0, 0.0))
    for patch in ((32, 32), (56, 36)):
        for s in range(4):
            a, b = _run(el, plain, patch, (s, 5)), _run(el, warped, patch, (s, 5))
            for key in ("hu", "label", "mask"):
                np.testing.assert_array_equal(a[key], b[key])


def test_probability_zero_transforms_are_not_applied():
    hu = _random_hu((32, 32, 3))
    el = _element(hu)
    never = dataclasses.replace(
        IDENTITY,
        **dict.fromkeys(
            (
                "rotation_probability",
                "scale_probability",
                "elastic_probability",
                "noise_probability",
                "blur_probability",
                "brightness_probability",
                "contrast_probability",
                "low_resolution_probability",
                "gamma_invert_probability",
                "gamma_probability",
            ),
            0.0,
        ),
        rotation_degrees=(90.0, 90.0),
        noise_sigma_hu=(50.0, 50.0),
        gamma_range=(2.0, 2.0),
    )
    out = _run(el, never, (32, 32))
    np.testing.assert_array_equal(out["hu"], hu.astype(np.float32))


# ---- spatial -------------------------------------------------------------------
def test_rotation_by_90_degrees_equals_rot90():
    hu = _random_hu((32, 32, 3))
    out = _run(_element(hu), _only(rotation_probability=1.0, rotation_degrees=(90.0, 90.0)))
    np.testing.assert_allclose(out["hu"], np.rot90(hu, 1, axes=(0, 1)), atol=0.05)
    np.testing.assert_array_equal(out["label"], np.rot90(hu > 50, 1, axes=(0, 1)))
    np.testing.assert_allclose(out["mask"], 1.0, atol=1e-4)


def _square(size=64, lo=16, hi=48, value=200):
    hu = np.zeros((size, size, 3), np.int16)
    hu[lo:hi, lo:hi] = value
    return hu


def test_scaling_shrinks_a_square_and_marks_the_outside():
    # Factor 2 on the sampling coordinates: content half as large, centred.
    out = _run(_element(_square()), _only(scale_probability=1.0, scale_range=(2.0, 2.0)))
    want = np.zeros((64, 64, 3), bool)
    want[24:40, 24:40] = True
    np.testing.assert_array_equal(out["label"], want)
    inside = np.zeros((64, 64, 3), bool)
    inside[16:48, 16:48] = True
    np.testing.assert_array_equal(out["mask"][~inside], 0.0)
    np.testing.assert_array_equal(out["hu"][~inside], aug.FILL_HU)
    np.testing.assert_array_equal(out["label"][~inside], 0)
    np.testing.assert_allclose(out["mask"][inside], 1.0)


def test_anisotropic_scaling_gives_rectangles():
    opts = _only(scale_probability=1.0, scale_range=(0.5, 2.0), anisotropic_scale_probability=1.0)
    ratios = []
    for s in range(4):
        label = _run(_element(_square()), opts, seed=(s, 0))["label"][..., 1]
        rows, cols = np.nonzero(label)
        box = label[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # still an axis-aligned box
        ratios.append((rows.max() - rows.min() + 1) / (cols.max() - cols.min() + 1))
    assert max(abs(np.log(r)) for r in ratios) > 0.1


def test_random_crop_is_an_exact_shifted_copy():
    hu = _random_hu((48, 40, 3))
    el = _element(hu, mask=np.random.default_rng(2).random((48, 40, 3)).astype(np.float32))
    offsets = set()
    for s in range(6):
        out = _run(el, OFF, (32, 32), seed=(s, 7))
        found = [
            (r, c)
            for r in range(17)
            for c in range(9)
            if np.array_equal(out["hu"], hu[r : r + 32, c : c + 32])
        ]
        assert len(found) == 1
        r, c = found[0]
        np.testing.assert_array_equal(out["mask"], el["mask"].numpy()[r : r + 32, c : c + 32])
        np.testing.assert_array_equal(out["label"], hu[r : r + 32, c : c + 32] > 50)
        offsets.add(found[0])
    assert len(offsets) > 1
    centred = _run(el, dataclasses.replace(OFF, random_crop=False), (32, 32))
    np.testing.assert_array_equal(centred["hu"], hu[8:40, 4:36])


def test_smaller_input_is_placed_in_air_with_zero_mask():
    hu = _random_hu((20, 24, 3))
    for s in range(3):
        out = _run(_element(hu), OFF, (32, 32), seed=(s, 1))
        rows, cols = np.nonzero(out["mask"][..., 0])
        r, c = rows.min(), cols.min()
        assert (rows.max() - r, cols.max() - c) == (19, 23)
        np.testing.assert_array_equal(out["hu"][r : r + 20, c : c + 24], hu)
        outside = np.ones((32, 32, 3), bool)
        outside[r : r + 20, c : c + 24] = False
        np.testing.assert_array_equal(out["hu"][outside], aug.FILL_HU)
        np.testing.assert_array_equal(out["label"][outside], 0)
        np.testing.assert_array_equal(out["mask"][outside], 0.0)


def test_mirroring_each_axis():
    hu = _random_hu((32, 40, 3))
    rows = _run(_element(hu), _only(mirror_probability=(1.0, 0.0)))
    np.testing.assert_array_equal(rows["hu"], hu[::-1])
    np.testing.assert_array_equal(rows["label"], hu[::-1] > 50)
    cols = _run(_element(hu), _only(mirror_probability=(0.0, 1.0)))
    np.testing.assert_array_equal(cols["hu"], hu[:, ::-1])


def test_elastic_deformation_is_smooth_and_bounded():
    size = 64
    ramp = np.broadcast_to(
        np.arange(size, dtype=np.float32)[:, None, None] * 2.0, (size, size, 3)
    ).copy()
    # 6 control points per axis (spacing 64 / 6 px), largest displacement 0.3 of that.
    opts = _only(elastic_probability=1.0, elastic_scale=(0.2, 0.2), elastic_magnitude=(0.3, 0.3))
    out = _run(_element(ramp), opts)
    inside = out["mask"][..., 0] == 1.0
    # On a linear ramp bilinear sampling is exact: value / 2 = sampled row.
    shift = out["hu"][..., 0] / 2.0 - np.arange(size)[:, None]
    assert np.abs(shift[inside]).max() <= 0.3 * size / 6 + 1e-3
    assert np.abs(shift[inside]).max() > 1.0
    step = np.abs(np.diff(shift, axis=0))[inside[1:] & inside[:-1]]
    assert step.max() < 1.0  # smooth, no fold-over: neighbours keep their order
    assert not np.array_equal(out["hu"], ramp)


def test_one_spatial_transform_for_image_labels_and_mask():
    rows, cols = np.mgrid[:64, :64]
    blob = 250 - 0.25 * ((rows - 30) ** 2 + 0.5 * (cols - 36) ** 2)
    hu = np.repeat(np.clip(blob, -150, 250)[..., None], 3, axis=2).astype(np.float32)
    el = _element(hu, label=(hu > 100).astype(np.uint8))
    opts = _only(
        rotation_probability=1.0,
        rotation_degrees=(-60.0, 60.0),
        scale_probability=1.0,
        anisotropic_scale_probability=0.5,
        elastic_probability=1.0,
        mirror_probability=(0.5, 0.5),
    )
    for s in range(4):
        out = _run(el, opts, (48, 48), seed=(s, 3))
        thresholded = out["hu"] > 100
        disagree = thresholded != out["label"].astype(bool)
        assert out["label"].sum() > 100
        # Disagreement only on the label's boundary (one pixel of interpolation).
        edge = np.zeros_like(disagree)
        lab = out["label"].astype(bool)
        for axis in (0, 1):
            change = np.diff(lab, axis=axis)
            edge |= np.pad(change, [(0, 1) if a == axis else (0, 0) for a in range(3)])
            edge |= np.pad(change, [(1, 0) if a == axis else (0, 0) for a in range(3)])
        assert not (disagree & ~edge).any()
        outside = out["mask"] == 0
        np.testing.assert_array_equal(out["hu"][outside], aug.FILL_HU)
        np.testing.assert_array_equal(out["label"][outside], 0)


@pytest.mark.parametrize("name", sorted(EACH))
def test_labels_stay_binary_and_mask_in_unit_interval(name):
    rng = np.random.default_rng(5)
    hu = _random_hu((40, 36, 3), low=-300, high=400)
    mask = rng.random((40, 36, 3)).astype(np.float32)
    label = (hu > 50).astype(np.uint8) * 2  # any positive label value counts as 1
    out = _run(_element(hu, label=label, mask=mask), EACH[name], (32, 32), seed=(3, 4))
    assert set(np.unique(out["label"])) == {0, 1}
    assert out["mask"].min() >= 0.0 and out["mask"].max() <= 1.0
    assert out["hu"].shape == (32, 32, 3) and np.isfinite(out["hu"]).all()


# ---- intensity -----------------------------------------------------------------
def test_noise_has_the_requested_sigma():
    hu = np.full((64, 64, 3), 50, np.int16)
    out = _run(_element(hu), _only(noise_probability=1.0, noise_sigma_hu=(10.0, 10.0)))
    assert abs(out["hu"].std() - 10.0) < 0.3 and abs(out["hu"].mean() - 50.0) < 0.3
    flat = out["hu"].reshape(-1, 3)
    assert abs(np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]) < 0.05  # independent slices


def test_blur_of_a_delta_is_the_gaussian():
    hu = np.zeros((33, 33, 3), np.float32)
    hu[16, 16] = 200.0
    out = _run(_element(hu), _only(blur_probability=1.0, blur_sigma=(1.0, 1.0)))
    taps = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    taps /= taps.sum()
    want = np.zeros((33, 33), np.float32)
    want[13:20, 13:20] = 200.0 * np.outer(taps, taps)
    for ch in range(3):
        np.testing.assert_allclose(out["hu"][..., ch], want, atol=1e-4)
    k = np.arange(33) - 16
    spread = (out["hu"][..., 0].sum(axis=1) * k**2).sum() / out["hu"][..., 0].sum()
    assert abs(spread - 1.0) < 0.02  # variance = sigma^2 (truncated at 3 sigma)


def test_brightness_and_contrast_map_known_hu_exactly():
    hu = np.zeros((8, 8, 3), np.int16)
    hu[:, :4] = 100
    hu[0, 0, 0], hu[0, 4, 0] = 200, -100
    bright = _run(
        _element(hu),
        _only(
            brightness_probability=1.0,
            brightness_range=(1.5, 1.5),
            brightness_shift_hu=(10.0, 10.0),
        ),
    )["hu"]
    # HU' = 100 + 1.5 (HU - 100) + 10, clipped to [lo, hi]
    assert (bright[1, 1, 0], bright[1, 5, 0], bright[0, 0, 0], bright[0, 4, 0]) == (
        110.0,
        -40.0,
        250.0,
        -150.0,
    )
    hu[0, 0, 0], hu[0, 4, 0] = 100, 0
    low = _run(_element(hu), _only(contrast_probability=1.0, contrast_range=(0.5, 0.5)))["hu"]
    # Mean 50: 100 -> 75, 0 -> 25.
    np.testing.assert_array_equal(low[:, :4], 75.0)
    np.testing.assert_array_equal(low[:, 4:], 25.0)
    high = _run(_element(hu), _only(contrast_probability=1.0, contrast_range=(2.0, 2.0)))["hu"]
    np.testing.assert_array_equal(high, hu)  # range preserved: 150 and -50 clip back


def test_low_resolution_is_nearest_down_bilinear_up():
    hu = _random_hu((32, 32, 3)).astype(np.float32)
    out = _run(
        _element(hu), _only(low_resolution_probability=1.0, low_resolution_scale=(0.5, 0.5))
    )["hu"]
    small = tf.image.resize(hu, (16, 16), method="nearest")
    np.testing.assert_allclose(out, tf.image.resize(small, (32, 32)).numpy(), atol=1e-4)
    assert np.abs(np.diff(out, axis=0)).mean() < 0.6 * np.abs(np.diff(hu, axis=0)).mean()
    flat = _run(
        _element(np.full((32, 32, 3), 70, np.int16)), _only(low_resolution_probability=1.0)
    )["hu"]
    np.testing.assert_array_equal(flat, 70.0)


def test_gamma_on_the_windowed_scale():
    hu = np.full((4, 4, 3), 50, np.int16)  # (50 - lo) / (hi - lo) = 0.5
    hu[0, 0] = -150
    hu[0, 1] = 250
    plain = _only(gamma_probability=1.0, gamma_range=(2.0, 2.0), gamma_retain_stats=False)
    out = _run(_element(hu), plain)["hu"]
    assert (out[1, 1, 0], out[0, 0, 0], out[0, 1, 0]) == (-50.0, -150.0, 250.0)  # 0.5 ** 2
    inverted = _only(gamma_invert_probability=1.0, gamma_range=(2.0, 2.0), gamma_retain_stats=False)
    assert _run(_element(hu), inverted)["hu"][1, 1, 0] == 150.0  # 1 - 0.5 ** 2
    hu = _random_hu((32, 32, 3))
    kept = _run(_element(hu), _only(gamma_probability=1.0, gamma_range=(1.4, 1.4)))["hu"]
    y0, y1 = (hu - LO) / (HI - LO), (kept - LO) / (HI - LO)
    assert abs(y1.mean() - y0.mean()) < 1e-3 and abs(y1.std() - y0.std()) < 1e-3
    assert np.abs(y1 - y0).max() > 0.01


def test_intensity_output_stays_in_the_window():
    hu = _random_hu((32, 32, 3), low=-1000, high=1000)
    strong = _only(
        noise_probability=1.0,
        noise_sigma_hu=(50.0, 50.0),
        brightness_probability=1.0,
        brightness_range=(2.0, 2.0),
        brightness_shift_hu=(80.0, 80.0),
    )
    out = _run(_element(hu, lo=-150.0, hi=200.0), strong)["hu"]
    assert out.min() >= -150.0 and out.max() <= 200.0


# ---- seeding -------------------------------------------------------------------
def test_same_seed_same_output_other_seed_different():
    everything = dataclasses.replace(
        aug.AugmentOptions(),
        **{
            f.name: 1.0
            for f in dataclasses.fields(aug.AugmentOptions)
            if f.name.endswith("_probability") and f.name != "mirror_probability"
        },
    )
    el = _element(_random_hu((40, 40, 3)))
    a = _run(el, everything, (32, 32), seed=(9, 1))
    b = _run(el, everything, (32, 32), seed=(9, 1))
    c = _run(el, everything, (32, 32), seed=(9, 2))
    for key in ("hu", "label", "mask"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["hu"], c["hu"])
    # Traced (as in tf.data): the same draws; graph rewrites may round differently.
    graph = tf.function(lambda e, s: aug.augment_example(e, s, everything, (32, 32)))
    g1, g2 = (graph(el, tf.constant([9, 1], tf.int64))["hu"].numpy() for _ in range(2))
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_allclose(g1, a["hu"], atol=0.05)


# ---- pipeline ------------------------------------------------------------------
def _examples():
    rng = np.random.default_rng(0)
    hu = rng.integers(-300, 400, (40, 36, 8)).astype(np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    labels[8:30, 6:28, 1:7] = 1
    return list(iter_examples(VolumeRecord("0", hu, labels), "liver"))


def _take(options, n=3):
    ds = pipeline.dataset_from_examples(_examples(), options)
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_augmented_pipeline_is_reproducible_per_seed():
    opts = pipeline.PipelineOptions(
        batch_size=2, seed=3, augment=aug.AugmentOptions(), patch_size=(32, 32)
    )
    first, again = _take(opts), _take(opts)
    assert first[0]["image"].shape == (2, 32, 32, 3)
    for x, y in zip(first, again):
        for key in ("image", "label", "mask"):
            np.testing.assert_array_equal(x[key], y[key])
    other = _take(dataclasses.replace(opts, seed=4))
    assert any(not np.array_equal(x["image"], y["image"]) for x, y in zip(first, other))
    assert all(set(np.unique(b["label"])) <= {0.0, 1.0} for b in first)


def test_validation_pipelines_are_never_augmented():
    base = pipeline.PipelineOptions(batch_size=2, shuffle=False, repeat=False)
    plain = _take(base, 10)
    with_aug = _take(
        dataclasses.replace(
            base, augment=aug.AugmentOptions(rotation_probability=1.0), patch_size=(16, 16)
        ),
        10,
    )
    assert len(plain) == len(with_aug) == 3
    for x, y in zip(plain, with_aug):
        for key in ("image", "label", "mask"):
            np.testing.assert_array_equal(x[key], y[key])


def test_patch_size_is_padded_to_the_multiple_and_image_size_still_resizes():
    opts = pipeline.PipelineOptions(batch_size=2, augment=OFF, patch_size=(20, 36), shuffle=False)
    batch = _take(opts, 1)[0]
    assert batch["image"].shape == (2, 32, 48, 3)
    assert batch["mask"][:, 20:].sum() == 0 and batch["mask"][:, :, 36:].sum() == 0
    resized = _take(dataclasses.replace(opts, image_size=24), 1)[0]
    assert resized["image"].shape == (2, 24, 24, 3)
