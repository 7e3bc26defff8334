"""Shared test material for the inference tests: tiny real networks, networks with
known outputs, and a synthetic volume whose segmentation is known exactly."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from liverseg.data import nifti

# Scaled intensity x = 255 * (clip(HU) - lo) / (hi - lo) with lo = -150 (background
# clipped) and hi = 250 (one bright liver voxel): x = 0.6375 * (HU + 150).
BACKGROUND_HU = -1000.0
LIVER_HU = 100.0  # x = 159.4
TUMOUR_HU = 20.0  # x = 108.4
BRIGHT_HU = 250.0  # x = 255
SHAPE = (32, 32, 8)
LIVER_BOX = (slice(6, 26), slice(7, 25), slice(1, 7))
TUMOUR_BOX = (slice(12, 18), slice(12, 18), slice(2, 6))
SPECK = (28, 3, 4)  # a soft liver-looking voxel far from the liver
SPECK_HU = 50.81 / 0.6375 - 150.0  # x = 50.81: liver logit 0.405, probability 0.6


def scaled(hu: float) -> float:
    return 0.6375 * (hu + 150.0)


def synthetic_volume(speck: bool = False, dtype=np.float32) -> np.ndarray:
    """Background, a liver block with a tumour block inside, optionally a soft speck."""
    hu = np.full(SHAPE, BACKGROUND_HU, dtype)
    hu[LIVER_BOX] = LIVER_HU
    hu[TUMOUR_BOX] = TUMOUR_HU
    hu[20, 20, 3] = BRIGHT_HU
    if speck:
        hu[SPECK] = SPECK_HU
    return hu


def expected_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[LIVER_BOX] = 1
    labels[TUMOUR_BOX] = 2
    return labels


def linear_model(scale: float, offsets, name: str = "linear_test_net"):
    """A network with known output: logit of channel c = scale * x_c + offsets[c].

    Each output channel reads only its own input channel (a 1x1 conv), so
    which stack and channel gave a slice's probability can be read back.
    """
    import keras

    image = keras.Input((None, None, 3), dtype="float32", name="image")
    conv = keras.layers.Conv2D(3, 1, name="linear")
    model = keras.Model(image, {"fuse": conv(image)}, name=name)
    conv.set_weights(
        [np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3) * scale, np.asarray(offsets, np.float32)]
    )
    return model


def threshold_model(threshold: float, above: bool, slope: float = 0.5):
    """Probability ~1 where the scaled intensity is above (or below) ``threshold``."""
    sign = 1.0 if above else -1.0
    return linear_model(sign * slope, [-sign * slope * threshold] * 3)


def fake_liver_model():
    """'Liver' = scaled intensity above 50: liver, tumour, not background."""
    return threshold_model(50.0, above=True)


def fake_tumor_model():
    """'Tumour' = scaled intensity below 130: tumour and background, not liver."""
    return threshold_model(130.0, above=False, slope=1.0)


@functools.cache
def real_models():
    """Untrained DS-SFFNet liver and tumour networks with fixed seeds (built once)."""
    from liverseg.models import build_ds_sffnet

    return build_ds_sffnet("liver", seed=11), build_ds_sffnet("tumor", seed=12)


def save_real_models(directory: Path) -> tuple[Path, Path]:
    """Saves the untrained networks as liverseg model directories."""
    from liverseg.models import save_model

    liver, tumor = real_models()
    return (
        save_model(liver, directory / "liver", overwrite=True),
        save_model(tumor, directory / "tumor", overwrite=True),
    )


def write_ct(path: Path, data: np.ndarray, affine=None) -> Path:
    """Writes a CT volume (int16 or float32 HU) with ``affine`` (default: 0.8 x 0.8 x 2.5 mm)."""
    if affine is None:
        affine = np.diag([0.8, 0.8, 2.5, 1.0])
    return nifti.save_ct(path, data, affine)


CHOICE_FIELDS = (
    "slice_fusion",
    "tta_shifts",
    "crf_targets",
    "opening_targets",
    "liver_largest_component",
    "tumor_min_volume_mm3",
)


def options(**kw):
    """``SegmentOptions`` from flat keywords: the test-time choices go into its
    ``postprocess`` choice; ``crf=False`` / ``opening=False`` mean no structure."""
    from liverseg.inference import SegmentOptions

    choice = {k: kw.pop(k) for k in CHOICE_FIELDS if k in kw}
    if kw.pop("crf", True) is False:
        choice["crf_targets"] = ()
    if kw.pop("opening", True) is False:
        choice["opening_targets"] = ()
    return SegmentOptions(**kw).with_choice(**choice)
