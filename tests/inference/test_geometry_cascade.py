"""The cascade on the model's grid: any storage orientation gives the same labels.

The networks here are small convolutions that are not mirror- or
rotation-symmetric (a one-sided intensity edge and a blob detector), so a
volume read in another orientation than the model's would be segmented
differently; brought to the model's grid and back it must not be.
"""

import numpy as np
import pytest

from liverseg.data import nifti
from liverseg.data.geometry import Geometry
from liverseg.inference import Segmenter
from tests.data.test_geometry import FLIPS, PERMUTATIONS, stored_as
from tests.inference.helpers import options as segment_options

SPACING = (3.0, 3.0, 5.0)
BASE = Geometry("LPS", None)


def one_sided_model(name: str, weight: float, bias: float):
    """Probability high where intensity rises along rows (axis 0) and is bright."""
    import keras

    image = keras.Input((None, None, 3), dtype="float32", name="image")
    conv = keras.layers.Conv2D(3, 3, padding="same", name=f"{name}_edge")
    model = keras.Model(image, {"fuse": conv(image)}, name=name)
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        kernel[2, 1, c, c] = weight  # the next row
        kernel[0, 1, c, c] = -0.5 * weight  # the previous row: a one-sided edge
        kernel[1, 2, c, c] = 0.25 * weight  # and a little of the next column
    conv.set_weights([kernel, np.full(3, bias, np.float32)])
    return model


@pytest.fixture(scope="module")
def models():
    return one_sided_model("liver_edges", 0.08, -6.0), one_sided_model("tumor_edges", -0.1, 10.0)


@pytest.fixture(scope="module")
def base_volume():
    rng = np.random.default_rng(5)
    hu = np.full((36, 30, 9), -100, np.int16)
    hu[6:28, 5:22, 1:8] = 110
    hu[12:18, 9:14, 3:6] = 20
    hu += rng.integers(-15, 15, hu.shape).astype(np.int16)
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])  # LPS storage
    affine[:3, 3] = (50.0, 40.0, -200.0)
    return hu, affine


def _stored(tmp_path, hu, affine, perm, flips):
    data, aff, _ = stored_as(hu, affine, SPACING, perm, flips)
    path = (
        tmp_path
        / f"volume-{''.join(map(str, perm))}{''.join('f' if f else 'k' for f in flips)}.nii"
    )
    nifti.save_ct(path, np.ascontiguousarray(data), aff, overwrite=True)
    return nifti.load_ct(path, dtype=None)


def _back_to_base(labels, perm, flips):
    for j, flip in enumerate(flips):
        if flip:
            labels = np.flip(labels, axis=j)
    return np.transpose(labels, np.argsort(perm))


def _segment(models, volume, geometry):
    options = segment_options(batch_size=2, crf=False, opening=False)
    return Segmenter(*models, options, geometry=geometry).segment(volume).labels


@pytest.mark.parametrize(
    "geometry", [BASE, Geometry("LPS", (2.0, 2.5))], ids=["reorient", "reorient+resample"]
)
def test_every_storage_orientation_gives_the_same_labels(models, base_volume, tmp_path, geometry):
    hu, affine = base_volume
    reference = _segment(models, _stored(tmp_path, hu, affine, (0, 1, 2), FLIPS[0]), geometry)
    assert np.count_nonzero(reference == 1) > 0 and np.count_nonzero(reference == 2) > 0
    storages = [(p, f) for p in PERMUTATIONS for f in FLIPS]
    assert len(storages) == 48
    native_differs = False
    for perm, flips in storages:
        volume = _stored(tmp_path, hu, affine, perm, flips)
        labels = _segment(models, volume, geometry)
        assert labels.shape == volume.shape
        np.testing.assert_array_equal(
            _back_to_base(labels, perm, flips), reference, err_msg=f"storage {perm} {flips}"
        )
        if not native_differs and perm[2] == 2 and min(volume.shape[:2]) >= 16:
            native = _segment(models, volume, None)
            native_differs = not np.array_equal(_back_to_base(native, perm, flips), reference)
    assert native_differs  # the networks do see orientation: the test can fail
