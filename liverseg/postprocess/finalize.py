"""From the networks' probabilities to the label map (the cascade's last steps).

Works on probability maps alone, so a stored choice can be applied to saved
probabilities without rerunning the networks (``liverseg.tuning`` does so
for every option it scores). Steps, as in the original test pipeline:

1. per structure, the 3D dense CRF (``crf_targets``) or a threshold;
2. per structure, the 6-neighbour binary opening (``opening_targets``);
3. optional, not in the original: keep the liver's largest 3D connected
   component (``liver_largest_component``); drop tumour components under
   ``tumor_min_volume_mm3`` (after the tumour is limited to the final liver);
4. labels: 1 where the final liver is, 2 where the final tumour is and the
   final liver too (``tumor_in_final_liver``; label 2 overrides 1).

Choices the original leaves open, and what is done here:

* CRF image: the bilateral feature is "the image scaled to [0, 1], x255".
  We give it the network's input image (HU clipped to [-150, 250], scaled
  with the volume's min and max to 0..255), whose x255 scaling is exactly
  that; ``crf_image="hu"`` passes the raw HU instead (min-max over the
  volume), where one intensity unit is ~16 HU and the 20-unit bilateral
  width covers ~300 HU, making the kernel nearly intensity-blind.
* CRF extent: on the bounding box of probability > 0.5 plus ``crf_margin``
  voxels (10) per axis instead of the whole volume (``crf_on="volume"``
  runs it on everything; docs/BENCHMARKS.md gives the time and memory
  saved). Voxels outside the box are background. A box of more than
  ``crf_max_voxels`` (1.5 M, ~0.3 GB) runs in overlapping z slabs, an
  approximation (Dice 0.991 to the one-piece liver CRF on a 512x512x200
  phantom) that keeps a 512x512x300 volume under issue 8's memory bound;
  ``crf_max_voxels=0`` never cuts.
* CRF kernel widths: the original's are in voxels of 512x512 LiTS slices.
  For other in-plane sizes they are scaled by sqrt(rows*cols)/512 (all three
  axes) so the kernels cover the same anatomy; at 512x512 this is exactly
  the original (``crf_spatial_scale="voxels"`` uses the numbers as given).
* Opening: the 6-neighbour 3D cross (the kernel is not published).

Memory: the CRF works on its box only, in z slabs of at most
``crf_max_voxels`` voxels, and its image is made for that box only; with
``release`` the full-size liver probability is dropped as soon as its CRF
box has been cut out, and the tumour result stays box-sized.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Sequence

import numpy as np

from liverseg.data import preprocess as pp
from liverseg.errors import ConfigError
from liverseg.postprocess import components, morphology
from liverseg.postprocess import crf as crf_lib
from liverseg.postprocess.choice import STRUCTURES, PostprocessChoice, checked_structures

CRF_SPATIAL_SCALES = ("reference", "voxels")


class CrfScope(str, enum.Enum):
    """Where the 3D dense CRF runs."""

    ROI = "roi"  # bounding box of probability > 0.5 plus a margin
    VOLUME = "volume"  # the whole volume (the original; slow, memory hungry)


class CrfImage(str, enum.Enum):
    """Which intensities feed the CRF's bilateral term (both min-max scaled to 0..255)."""

    WINDOW = "window"  # the network input: HU clipped to [-150, 250]
    HU = "hu"  # the raw HU values


def _checked_enum(name: str, value, enum_type) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    allowed = tuple(e.value for e in enum_type)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _checked_count(name: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer{what}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class FinalizeOptions:
    """How probabilities become labels; the defaults are the original's."""

    threshold: float = 0.5
    #: structures refined by the CRF; the others are thresholded.
    crf_targets: tuple[str, ...] = STRUCTURES
    #: structures opened after the CRF / threshold.
    opening_targets: tuple[str, ...] = STRUCTURES
    liver_largest_component: bool = False
    tumor_min_volume_mm3: float = 0.0
    liver_mask: bool = True
    tumor_in_final_liver: bool = True
    crf_on: str = CrfScope.ROI.value
    crf_margin: int = 10
    crf_image: str = CrfImage.WINDOW.value
    crf_params: crf_lib.CrfParams = crf_lib.CrfParams()
    crf_max_voxels: int = crf_lib.DEFAULT_MAX_VOXELS
    crf_spatial_scale: str = "reference"

    def __post_init__(self):
        if not 0.0 < float(self.threshold) < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold!r}")
        for name in ("crf_targets", "opening_targets"):
            object.__setattr__(self, name, checked_structures(name, getattr(self, name)))
        object.__setattr__(self, "crf_on", _checked_enum("crf_on", self.crf_on, CrfScope))
        object.__setattr__(self, "crf_image", _checked_enum("crf_image", self.crf_image, CrfImage))
        if self.crf_spatial_scale not in CRF_SPATIAL_SCALES:
            raise ConfigError(
                f"crf_spatial_scale must be one of {CRF_SPATIAL_SCALES}, "
                f"got {self.crf_spatial_scale!r}"
            )
        _checked_count("crf_max_voxels", self.crf_max_voxels, " (0: no limit)")
        _checked_count("crf_margin", self.crf_margin, "")
        # validates the component options the same way a stored choice is validated
        PostprocessChoice(
            liver_largest_component=self.liver_largest_component,
            tumor_min_volume_mm3=self.tumor_min_volume_mm3,
        )

    @classmethod
    def from_choice(cls, choice: PostprocessChoice, **overrides) -> FinalizeOptions:
        """The options a stored choice prescribes (CRF settings from ``overrides``)."""
        return cls(
            crf_targets=choice.crf_targets,
            opening_targets=choice.opening_targets,
            liver_largest_component=choice.liver_largest_component,
            tumor_min_volume_mm3=choice.tumor_min_volume_mm3,
            **overrides,
        )


@dataclasses.dataclass(eq=False)
class Probabilities:
    """The networks' output on the volume's grid: the full-size float32 liver
    probability and the tumour probability over ``tumor_region`` (zero
    elsewhere; both None without a tumour network or ROI)."""

    liver: np.ndarray | None
    tumor: np.ndarray | None = None
    tumor_region: tuple[slice, slice, slice] | None = None

    @classmethod
    def from_full(cls, liver: np.ndarray, tumor: np.ndarray | None) -> Probabilities:
        """From full-size maps (e.g. saved ones): the tumour kept over its non-zero box."""
        liver = np.asarray(liver, np.float32)
        if tumor is None:
            return cls(liver)
        tumor = np.asarray(tumor, np.float32)
        if tumor.shape != liver.shape:
            raise ValueError(
                f"tumour probability shape {tumor.shape} does not match the liver's {liver.shape}"
            )
        box = morphology.bounding_box(tumor > 0)
        if box is None:
            return cls(liver)
        return cls(liver, np.ascontiguousarray(tumor[box]), box)


@dataclasses.dataclass(eq=False)
class Masks:
    """Each structure after its CRF or threshold: the full-size liver mask and
    the tumour mask over ``tumor_box`` (None: no tumour above threshold)."""

    liver: np.ndarray
    tumor: np.ndarray | None = None
    tumor_box: tuple[slice, ...] | None = None


def binarize(
    hu: np.ndarray,
    intensity: tuple[float, float],
    probs: Probabilities,
    options: FinalizeOptions = FinalizeOptions(),
    *,
    release: bool = False,
) -> Masks:
    """Step 1: the CRF (``options.crf_targets``) or the threshold of each structure.

    ``hu``: the CT in HU as stored (the CRF image); ``intensity``: its
    ``preprocess.intensity_range``. ``release``: set ``probs``' arrays to None
    once used, so their memory can go.
    """
    crf_image = _crf_image_fn(hu, intensity, options)
    whole = tuple(slice(0, n) for n in hu.shape)
    job = _crf_job(probs.liver, whole, hu.shape, "liver" in options.crf_targets, options)
    if release:
        probs.liver = None
    liver = _full_size(_run_crf(job, hu, crf_image, options), hu.shape)
    del job
    masks = Masks(liver)
    if probs.tumor is not None:
        job = _crf_job(
            probs.tumor, probs.tumor_region, hu.shape, "tumor" in options.crf_targets, options
        )
        if release:
            probs.tumor = None
        masks.tumor, masks.tumor_box = _run_crf(job, hu, crf_image, options)
    return masks


def masks_to_labels(
    masks: Masks,
    spacing: Sequence[float],
    options: FinalizeOptions = FinalizeOptions(),
    *,
    in_place: bool = False,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """Steps 2-4: opening, components and the label map (uint8 0/1/2).

    ``spacing``: voxel size in mm (the minimum tumour volume). ``in_place``
    lets the label map reuse the liver mask's memory (``masks`` is then spent).
    """
    timings = {} if timings is None else timings
    t = time.perf_counter()
    liver, tumor = masks.liver, masks.tumor
    if "liver" in options.opening_targets:
        liver = morphology.opening(liver)
    if tumor is not None and "tumor" in options.opening_targets:
        # zero outside its box, so opening the box alone is the same
        tumor = morphology.opening(tumor)
    if options.liver_largest_component:
        liver = components.largest_component(liver)
    timings["opening"] = time.perf_counter() - t

    t = time.perf_counter()
    if liver is masks.liver and not in_place:
        liver = liver.copy()
    labels = liver.view(np.uint8)  # bool -> 0/1 without a copy
    if tumor is not None:
        if options.liver_mask and options.tumor_in_final_liver:
            tumor = np.logical_and(
                tumor,
                liver[masks.tumor_box],
                out=tumor if tumor is not masks.tumor or in_place else None,
            )
        if options.tumor_min_volume_mm3 > 0:
            tumor = components.remove_small_components(
                tumor, components.min_voxels_for(options.tumor_min_volume_mm3, spacing)
            )
        labels[masks.tumor_box][tumor] = 2
    timings["labels"] = time.perf_counter() - t
    return labels


def finalize(
    hu: np.ndarray,
    intensity: tuple[float, float],
    probs: Probabilities,
    spacing: Sequence[float],
    options: FinalizeOptions = FinalizeOptions(),
    *,
    release: bool = False,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """The label map (uint8 0/1/2, the shape of ``hu``) of ``probs``: ``binarize``
    then ``masks_to_labels``. ``timings`` gets seconds under "crf", "opening"
    and "labels"."""
    timings = {} if timings is None else timings
    t = time.perf_counter()
    masks = binarize(hu, intensity, probs, options, release=release)
    timings["crf"] = time.perf_counter() - t
    return masks_to_labels(masks, spacing, options, in_place=True, timings=timings)


@dataclasses.dataclass
class _CrfJob:
    """One structure's binarisation: a box of the volume (None: nothing above
    threshold) with either the finished ``mask`` or the ``prob`` the CRF refines."""

    box: tuple[slice, ...] | None
    prob: np.ndarray | None = None
    mask: np.ndarray | None = None


def _crf_job(
    prob: np.ndarray,
    region: tuple[slice, slice, slice],
    shape: tuple[int, ...],
    use_crf: bool,
    options: FinalizeOptions,
) -> _CrfJob:
    """What the CRF of a probability given over ``region`` of the volume (zero
    elsewhere) needs: its box and the box's probability (a copy unless the box
    is the whole region, so ``prob`` can be freed), or, without CRF, the mask
    ``prob > threshold`` over ``region``.

    The ROI CRF runs on the bounding box of prob > threshold grown by
    ``crf_margin`` voxels (clipped to the volume, not to ``region``).
    """
    if not use_crf:
        return _CrfJob(region, mask=prob > options.threshold)
    if options.crf_on == CrfScope.VOLUME.value:
        box = tuple(slice(0, n) for n in shape)
    else:
        inner = morphology.bounding_box(prob > options.threshold)
        if inner is None:
            return _CrfJob(None)
        m = options.crf_margin
        box = tuple(
            slice(max(r.start + b.start - m, 0), min(r.start + b.stop + m, n))
            for r, b, n in zip(region, inner, shape)
        )
    if box == region:
        return _CrfJob(box, prob=prob)
    box_prob = np.zeros(tuple(b.stop - b.start for b in box), np.float32)
    overlap = tuple(slice(max(r.start, b.start), min(r.stop, b.stop)) for r, b in zip(region, box))
    box_prob[tuple(slice(o.start - b.start, o.stop - b.start) for o, b in zip(overlap, box))] = (
        prob[tuple(slice(o.start - r.start, o.stop - r.start) for o, r in zip(overlap, region))]
    )
    return _CrfJob(box, prob=box_prob)


def _run_crf(
    job: _CrfJob, hu: np.ndarray, crf_image: Callable, options: FinalizeOptions
) -> tuple[np.ndarray | None, tuple[slice, ...] | None]:
    """``(mask, box)``: the bool mask over ``box`` (the CRF's MAP labels, or the
    job's thresholded mask); ``(None, None)`` when nothing is above threshold."""
    if job.mask is not None or job.box is None:
        return job.mask, job.box
    image, rng = crf_image(job.box)
    params = options.crf_params
    if options.crf_spatial_scale == "reference":
        params = params.spatially_scaled(float(np.sqrt(hu.shape[0] * hu.shape[1])) / 512.0)
    labels = crf_lib.dense_crf_3d(
        job.prob, image, params, intensity_range=rng, max_voxels=options.crf_max_voxels or None
    )
    return labels.view(bool), job.box


def _crf_image_fn(hu: np.ndarray, intensity, options: FinalizeOptions) -> Callable:
    """``f(box) -> (image_of, (lo, hi))``: ``image_of(zs)`` is the CRF's image over
    the box's z range ``zs`` (relative to the box; made per CRF slab), ``(lo, hi)``
    the range that scales it to 0..255 as the whole volume would be."""
    if not options.crf_targets:
        return lambda box: None
    if options.crf_image == CrfImage.WINDOW.value:
        return lambda box: (lambda zs: _windowed(hu, box, zs, intensity), (0.0, 255.0))
    hu_range = (float(np.min(hu)), float(np.max(hu)))
    return lambda box: (lambda zs: _sub_box(hu, box, zs), hu_range)


def _full_size(
    result: tuple[np.ndarray | None, tuple[slice, ...] | None], shape: tuple[int, ...]
) -> np.ndarray:
    """A ``(mask, box)`` pasted into a full-size bool array (background elsewhere)."""
    mask, box = result
    out = np.zeros(shape, bool)
    if box is not None:
        out[box] = mask
    return out


def _sub_box(hu: np.ndarray, box: tuple[slice, ...], zs: slice) -> np.ndarray:
    """``hu[box][:, :, zs]`` as a view."""
    z = box[2]
    return hu[box[0], box[1], z.start + zs.start : z.start + zs.stop]


def _windowed(hu: np.ndarray, box: tuple[slice, ...], zs: slice, intensity) -> np.ndarray:
    """``window_and_scale`` of ``_sub_box(hu, box, zs)`` (float32 0..255)."""
    return pp.window_and_scale(_sub_box(hu, box, zs), *intensity)
