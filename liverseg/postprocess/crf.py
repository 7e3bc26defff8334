"""3D fully connected CRF (Kraehenbuehl & Koltun) on one structure's probability.

Reproduces what the original pipeline ran through DenseInferenceWrapper
(docs/ORIGINAL.md section 5) with ``pydensecrf``'s N-dimensional ``DenseCRF``:

- two labels (background, structure) with unary -log(1 - p) and -log(p);
- Gaussian pairwise term on voxel coordinates / (3, 3, 3), Potts weight 3;
- bilateral pairwise term on voxel coordinates / (60, 60, 60) and
  intensity / 20, Potts weight 10, where the intensity is the image min-max
  scaled to [0, 1] and multiplied by 255;
- 10 mean-field iterations, MAP label.

Standard deviations are in voxels along the three array axes (as in the
original; the voxel spacing is not used). The kernels are ``CONST_KERNEL``
with ``NORMALIZE_AFTER``: the 2011 DenseCRF code the wrapper was built on
divides each filtered message by the voxel's own kernel sum after filtering,
which is pydensecrf's ``NORMALIZE_AFTER``. Its default, ``NORMALIZE_SYMMETRIC``,
is not the original's and changes results noticeably at low contrast (a
quarter of a 7000-voxel test structure in one measured case).

pydensecrf's features are computed with ``pydensecrf.utils``: for a 3D
image without channel axis ``create_pairwise_bilateral(..., chdim=-1)`` adds
a leading channel axis and builds a 3D coordinate mesh, so each voxel
(i, j, k) gets the feature (i/sx, j/sy, k/sz, I/s_I) (checked by a test).
All arrays handed to pydensecrf are C-contiguous float32 in C (row-major)
voxel order, the order ``reshape`` uses to bring the labels back.

Unary clipping: the original took -log(p) unclipped, so p = 0 gave an
infinite energy and that label could never win. ``CrfParams.min_prob``
(1e-8, energy 18.4) keeps that behaviour while staying finite: the clipped
energy exceeds the largest possible pairwise gain (3 + 10 = 13 with the
original weights), so a voxel with p = 0 or 1 keeps its label.

Cost: pydensecrf needs about 200 bytes per voxel (measured; ~150 of them
are its two permutohedral lattices), so a whole 512x512x500 volume needs
about 27 GB and minutes. ``dense_crf_3d_roi`` runs the CRF on the
structure's bounding box plus a margin only; it is faster and smaller in
proportion to the voxel count, but not identical to the whole-volume CRF
(see its docstring and docs/BENCHMARKS.md).

Memory bound: with ``max_voxels`` a larger array is cut into overlapping
slabs along its third axis (``z_slabs``), each slab gets its own CRF (same
intensity scaling as the whole) and keeps the labels of its core. The
overlap (``default_overlap``: three Gaussian-kernel widths along z, at
least 2 voxels) gives every core voxel the smoothing kernel's whole reach.
The bilateral kernel (std 60 voxels) reaches across the whole ROI, further
than a slab, so slabbing is an approximation everywhere in the slab, not only
at the cuts (measured on a 512x512x200 phantom, docs/BENCHMARKS.md: Dice to
the unslabbed liver CRF 0.993 with 3.5 M-voxel slabs whatever the overlap,
0.987 / 0.989 / 0.991 with 1.5 M-voxel slabs and overlaps 0 / 3 / 7). At or
below ``max_voxels`` the result is exactly the unslabbed CRF.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from liverseg.errors import ConfigError
from liverseg.postprocess.morphology import bounding_box

logger = logging.getLogger(__name__)

BYTES_PER_VOXEL = 200
"""pydensecrf's resident memory per CRF voxel with two labels and both kernels (measured)."""

DEFAULT_MAX_VOXELS = 1_500_000
"""Voxels of one CRF before it is cut into slabs: ~0.3 GB (``BYTES_PER_VOXEL``), what
is left of issue 8's memory bound at 512x512x300 beside TensorFlow and the volume."""


@dataclass(frozen=True)
class CrfParams:
    """Dense CRF parameters; the defaults are the original's."""

    gaussian_std: tuple[float, float, float] = (3.0, 3.0, 3.0)
    gaussian_weight: float = 3.0
    bilateral_std: tuple[float, float, float] = (60.0, 60.0, 60.0)
    bilateral_intensity_std: float = 20.0
    bilateral_weight: float = 10.0
    iterations: int = 10
    min_prob: float = 1e-8

    def spatially_scaled(self, factor: float) -> CrfParams:
        """The same CRF with both kernels' spatial widths multiplied by ``factor``."""
        if factor == 1.0:
            return self
        return dataclasses.replace(
            self,
            gaussian_std=tuple(s * factor for s in self.gaussian_std),
            bilateral_std=tuple(s * factor for s in self.bilateral_std),
        )

    def __post_init__(self):
        for name in ("gaussian_std", "bilateral_std"):
            value = getattr(self, name)
            if len(value) != 3 or min(value) <= 0:
                raise ConfigError(f"CrfParams.{name} must be 3 positive numbers, got {value!r}")
        if self.bilateral_intensity_std <= 0:
            raise ConfigError("CrfParams.bilateral_intensity_std must be positive")
        if self.gaussian_weight < 0 or self.bilateral_weight < 0:
            raise ConfigError("CrfParams weights must be >= 0")
        if self.iterations < 0:
            raise ConfigError("CrfParams.iterations must be >= 0")
        if not 0 < self.min_prob < 0.5:
            raise ConfigError("CrfParams.min_prob must be in (0, 0.5)")


def _check_inputs(prob: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob = np.asarray(prob)
    image = np.asarray(image)
    if prob.ndim != 3 or image.shape != prob.shape:
        raise ValueError(
            f"dense CRF needs 3D probability and image of the same shape, "
            f"got {prob.shape} and {image.shape}"
        )
    if prob.size == 0:
        raise ValueError("dense CRF got an empty volume")
    return prob, image


def scale_intensity(
    image: np.ndarray, intensity_range: Sequence[float] | None = None
) -> np.ndarray:
    """Image min-max scaled to [0, 1], then x255: the bilateral intensity feature.

    ``intensity_range`` (lo, hi) replaces the image's own min and max, so
    that a crop can be scaled exactly as its whole volume would be.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = (
        (float(image.min()), float(image.max()))
        if intensity_range is None
        else map(float, intensity_range)
    )
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("dense CRF image contains non-finite values")
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    scaled = (image - np.float32(lo)) / np.float32(hi - lo)
    return np.ascontiguousarray(np.clip(scaled, 0.0, 1.0) * np.float32(255.0), dtype=np.float32)


def unary_energy(prob: np.ndarray, min_prob: float) -> np.ndarray:
    """(2, N) C-contiguous float32 energies -log(1 - p), -log(p), p clipped to
    [min_prob, 1 - min_prob] (computed in float64 so 1 - p is not rounded to 0)."""
    p = np.clip(np.asarray(prob, dtype=np.float64).ravel(), min_prob, 1.0 - min_prob)
    unary = np.empty((2, p.size), dtype=np.float32)
    unary[0] = -np.log1p(-p)
    unary[1] = -np.log(p)
    return unary


def pairwise_features(
    image: np.ndarray,
    params: CrfParams = CrfParams(),
    *,
    intensity_range: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The (3, N) Gaussian and (4, N) bilateral feature arrays (C-contiguous
    float32, voxels in C order) of a 3D image: (i/sx, j/sy, k/sz) and
    (i/sx, j/sy, k/sz, I/s_I) with I the image scaled to [0, 255]."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"dense CRF image must be 3D, got shape {image.shape}")
    return (
        _gaussian_features(image.shape, params),
        _bilateral_features(image, params, intensity_range),
    )


def _gaussian_features(shape: Sequence[int], params: CrfParams) -> np.ndarray:
    from pydensecrf.utils import create_pairwise_gaussian

    return np.ascontiguousarray(
        create_pairwise_gaussian(params.gaussian_std, tuple(shape)), dtype=np.float32
    )


def _bilateral_features(
    image: np.ndarray, params: CrfParams, intensity_range: Sequence[float] | None
) -> np.ndarray:
    from pydensecrf.utils import create_pairwise_bilateral

    return np.ascontiguousarray(
        create_pairwise_bilateral(
            params.bilateral_std,
            (params.bilateral_intensity_std,),
            scale_intensity(image, intensity_range),
            chdim=-1,
        ),
        dtype=np.float32,
    )


def default_overlap(params: CrfParams = CrfParams()) -> int:
    """Slab overlap along z: three Gaussian-kernel widths (9 voxels at the original 3)."""
    return max(int(math.ceil(3.0 * params.gaussian_std[2])), 2)


def z_slabs(shape: Sequence[int], max_voxels: int, overlap: int) -> list[tuple[slice, slice]]:
    """``(slab, core)`` ranges along the third axis covering ``shape``: each slab at
    most ``max_voxels`` voxels, cores of (nearly) equal length tiling the axis, each
    core extended by ``overlap`` slices on both sides (clipped to the array) to give
    its slab; ``core`` is relative to the slab. One slab when everything fits.

    The overlap is capped at a quarter of the slab depth (so cores are at least
    half of each slab and the work at most about twice the unslabbed CRF's); a
    single slice larger than ``max_voxels`` is still one slab.
    """
    x, y, depth = (int(v) for v in shape)
    plane = x * y
    if max_voxels < 1 or overlap < 0:
        raise ValueError(f"max_voxels must be >= 1 and overlap >= 0, got {max_voxels}, {overlap}")
    if plane * depth <= max_voxels:
        return [(slice(0, depth), slice(0, depth))]
    max_depth = max(max_voxels // plane, 1)
    fitted = min(overlap, max_depth // 4)
    if fitted < overlap or plane > max_voxels:
        logger.info(
            "CRF slabs of %dx%d voxels: overlap %d instead of %d, %d slice(s) per "
            "slab (max_voxels %d)",
            x,
            y,
            fitted,
            overlap,
            max_depth,
            max_voxels,
        )
    count = -(-depth // (max_depth - 2 * fitted))
    edges = [round(i * depth / count) for i in range(count + 1)]
    slabs = []
    for a, b in zip(edges[:-1], edges[1:]):
        lo, hi = max(a - fitted, 0), min(b + fitted, depth)
        slabs.append((slice(lo, hi), slice(a - lo, b - lo)))
    return slabs


def dense_crf_3d(
    prob: np.ndarray,
    image: np.ndarray | Callable[[slice], np.ndarray],
    params: CrfParams = CrfParams(),
    *,
    intensity_range: Sequence[float] | None = None,
    max_voxels: int | None = None,
    overlap: int | None = None,
) -> np.ndarray:
    """MAP labels (uint8 0/1, shape of ``prob``) of the 3D dense CRF.

    ``prob``: probability of the structure per voxel, in [0, 1]; ``image``:
    the matching intensity volume (any dtype and memory layout), or a
    function giving the image of ``prob[:, :, zs]`` for a slice ``zs`` of
    the third axis (so a large image is made one slab at a time; needs
    ``intensity_range``); its min-max scaling uses ``intensity_range`` when
    given. ``max_voxels`` (None: no limit) bounds the voxels of one CRF: a
    larger array is done in overlapping z slabs (``z_slabs``; ``overlap``
    defaults to ``default_overlap(params)``), each scaled with the whole
    image's range.
    """
    if callable(image):
        if intensity_range is None:
            raise ValueError("dense CRF with an image function needs intensity_range")
        image_of = image
    else:
        prob, image = _check_inputs(prob, image)

        def image_of(zs):
            return image[:, :, zs]

    prob = np.asarray(prob)
    depth = prob.shape[2] if prob.ndim == 3 else 0
    if max_voxels is None or prob.size <= max_voxels:
        return _dense_crf(*_check_inputs(prob, image_of(slice(0, depth))), params, intensity_range)
    if overlap is None:
        overlap = default_overlap(params)
    if intensity_range is None:
        # the range scale_intensity would take of the whole image (after its float32 cast)
        intensity_range = (float(np.float32(np.min(image))), float(np.float32(np.max(image))))
    out = np.empty(prob.shape, np.uint8)
    for slab, core in z_slabs(prob.shape, max_voxels, overlap):
        labels = _dense_crf(
            *_check_inputs(prob[:, :, slab], image_of(slab)), params, intensity_range
        )
        out[:, :, slab][:, :, core] = labels[:, :, core]
    return out


def _dense_crf(
    prob: np.ndarray, image: np.ndarray, params: CrfParams, intensity_range: Sequence[float] | None
) -> np.ndarray:
    """One CRF over the whole of ``prob`` (checked 3D arrays of one shape)."""
    import pydensecrf.densecrf as dcrf

    if not np.all(np.isfinite(prob)) or prob.min() < 0 or prob.max() > 1:
        raise ValueError("dense CRF probabilities must be finite and in [0, 1]")
    crf = dcrf.DenseCRF(int(prob.size), 2)
    crf.setUnaryEnergy(unary_energy(prob, params.min_prob))
    # one feature array alive at a time (pydensecrf keeps its own copy)
    features = _gaussian_features(prob.shape, params)
    crf.addPairwiseEnergy(
        features,
        compat=float(params.gaussian_weight),
        kernel=dcrf.CONST_KERNEL,
        normalization=dcrf.NORMALIZE_AFTER,
    )
    features = None
    features = _bilateral_features(image, params, intensity_range)
    crf.addPairwiseEnergy(
        features,
        compat=float(params.bilateral_weight),
        kernel=dcrf.CONST_KERNEL,
        normalization=dcrf.NORMALIZE_AFTER,
    )
    del features
    q = np.asarray(crf.inference(int(params.iterations)))
    # Ties go to background, like the original's strict ">" in its argmax.
    return (q[1] > q[0]).reshape(prob.shape).astype(np.uint8)


def crf_roi(
    prob: np.ndarray, threshold: float = 0.5, margin: int | Sequence[int] = 10
) -> tuple[slice, ...] | None:
    """Box (slices) the ROI CRF runs on: the bounding box of ``prob > threshold``
    grown by ``margin`` voxels per axis and clipped to the volume; None if empty."""
    mask = np.asarray(prob) > threshold
    margins = (margin,) * 3 if np.isscalar(margin) else tuple(margin)
    if len(margins) != 3 or min(margins) < 0:
        raise ValueError(f"margin must be one or three non-negative ints, got {margin!r}")
    box = bounding_box(mask)
    if box is None:
        return None
    return tuple(
        slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(box, margins, mask.shape)
    )


def dense_crf_3d_roi(
    prob: np.ndarray,
    image: np.ndarray,
    params: CrfParams = CrfParams(),
    *,
    margin: int | Sequence[int] = 10,
    threshold: float = 0.5,
    max_voxels: int | None = None,
    overlap: int | None = None,
) -> np.ndarray:
    """``dense_crf_3d`` on the structure's bounding box plus ``margin`` only,
    pasted into a zero volume of the full shape.

    The box is that of ``prob > threshold`` grown by ``margin`` voxels. The
    image is scaled with the whole volume's min and max, as the whole-volume
    CRF would. Voxels outside the box are background.

    Not identical to the whole-volume CRF: the bilateral kernel (std 60
    voxels) averages messages over a large region, and the background outside
    the box, when its intensity is close to the structure's, pulls the
    structure towards background in the whole-volume CRF but not here. The
    ROI result therefore tends to keep more foreground; the gap shrinks as
    the margin grows and vanishes when the image separates the structure
    (measured in tests and docs/BENCHMARKS.md). Saving: time and memory in
    proportion to the voxel count (a liver ROI is 5-10 % of a LiTS volume).
    With nothing above ``threshold`` (0.5) the result is all background,
    exactly what the CRF gives: with the Potts model no voxel's probability
    can rise above 0.5 when none starts above it. ``max_voxels`` and
    ``overlap``: as in ``dense_crf_3d`` (slabs of the box).
    """
    prob, image = _check_inputs(prob, image)
    out = np.zeros(prob.shape, dtype=np.uint8)
    box = crf_roi(prob, threshold, margin)
    if box is None:
        return out
    image = np.asarray(image)
    lo, hi = float(image.min()), float(image.max())
    out[box] = dense_crf_3d(
        prob[box],
        image[box],
        params,
        intensity_range=(lo, hi),
        max_voxels=max_voxels,
        overlap=overlap,
    )
    return out
