"""Segments one loaded CT volume through the full cascade (DESIGN.md sections 1, 2, 5).

Steps, as in the original test pipeline:

1. intensity range of the HU-clipped volume (one pass, no copy); every
   batch of slice stacks is windowed and scaled on its own;
2. liver net over all slices, each slice from its own stack and channel
   (middle channel of the stack centred on it; channel 0 / last for the
   first / last slice); liver mask = probability > 0.5;
3. ROI: the 2D bounding box of the predicted liver over all slices; the
   slices with more than ``min_liver_pixels`` (500 at 512x512) predicted
   liver pixels are the ROI slices;
4. tumour net on the ROI slices cropped to the box (``crop_variant``
   ``original`` drops the box's last row and column as the original code,
   ``paper`` keeps them); the crop's probabilities are pasted back (zero
   elsewhere) and set to 0 where the liver mask is 0 (the original's
   ``mask_with_liver`` with the liver net's thresholded output);
5. 3D dense CRF (original parameters, ``liverseg.postprocess.crf``) on the
   liver probability and on the masked tumour probability (``crf_targets``
   picks which; a structure left out is thresholded at ``threshold``);
6. binary opening of both masks (``liverseg.postprocess.morphology``);
7. label map: 1 where the final liver is, 2 where the final tumour is and
   the final liver too (label 2 overrides 1).

Choices the original leaves open, and what is done here:

* CRF image: the bilateral feature is "the image scaled to [0, 1], x255".
  We give it the network's input image (HU clipped to [-150, 250], scaled
  with the volume's min and max to 0..255), whose x255 scaling is exactly
  that; ``crf_image="hu"`` passes the raw HU instead (min-max over the
  volume), where one intensity unit is ~16 HU and the 20-unit bilateral
  width covers ~300 HU, making the kernel nearly intensity-blind.
* CRF extent: on the bounding box of probability > 0.5 plus
  ``crf_margin`` voxels (10) per axis instead of the whole volume
  (``crf_on="volume"`` runs it on everything; docs/BENCHMARKS.md gives the
  time and memory saved). Voxels outside the box are background. A box of
  more than ``crf_max_voxels`` (1.5 M, ~0.3 GB) runs in overlapping z slabs,
  an approximation (Dice 0.991 to the one-piece liver CRF on a 512x512x200
  phantom) that keeps a 512x512x300 volume under issue 8's memory bound;
  ``crf_max_voxels=0`` never cuts.
* CRF kernel widths: the original's are in voxels of 512x512 LiTS slices.
  For other in-plane sizes they are scaled by sqrt(rows*cols)/512 (all three
  axes) so the kernels cover the same anatomy; at 512x512 this is exactly
  the original (``crf_spatial_scale="voxels"`` uses the numbers as given at
  every size: on small images the 60-voxel bilateral kernel spans the whole
  body and erases a low-contrast liver).
* Liver net output for ROI, mask and CRF: the fused output's sigmoid.
* ``slice_fusion="mean"`` (not the original) averages, for each slice, the
  probabilities of every stack holding it instead of taking the middle
  channel: for the liver net the same stacks are computed either way, so it
  is free, and it acts as a three-view test-time ensemble (docs/BENCHMARKS.md
  gives the Dice it adds on phantoms); the tumour net needs at most two more
  stacks per volume.
* Tumour stacks near the ROI's ends use the neighbouring slices of the
  volume even when those are not ROI slices themselves.
* A box narrower than the networks' minimum input (16 px) is grown around
  its centre to 16 px (clipped to the image) before the tumour net runs.
* Tumour masking uses the liver net's thresholded probability (before
  CRF); the final label map keeps tumour only inside the final (CRF +
  opening) liver unless ``tumor_in_final_liver`` is off. With
  ``liver_mask=False`` neither masking is done.
* Opening: the 6-neighbour 3D cross (the kernel is not published).

Memory: the volume stays in its loaded dtype (int16 for integer CT); the
float32 liver probability is the one full-size float array, freed before the
liver CRF unless ``keep_probabilities``; tumour probabilities are kept only
over the ROI slices and box; the masks are one byte per voxel; the CRF works
on its box only, in z slabs of at most ``crf_max_voxels`` voxels (about 200
bytes each in pydensecrf; ``liverseg.postprocess.crf.z_slabs``), and its
image is made for that box only. TensorFlow's activations are bounded by
the automatic batch size (``liverseg.inference.predictor``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import time
from typing import Callable

import numpy as np

from liverseg.data import preprocess as pp
from liverseg.data.nifti import NiftiVolume
from liverseg.errors import ConfigError, NiftiError
from liverseg.inference.predictor import (AUTO_BATCH, BATCH_PIXELS, MIN_NET_SIZE,
                                          PredictorOptions, StackPredictor, check_shifts,
                                          check_slice_fusion, predict_slices)
from liverseg.postprocess import crf as crf_lib
from liverseg.postprocess import morphology

logger = logging.getLogger(__name__)

CRF_SPATIAL_SCALES = ("reference", "voxels")
CRF_TARGETS = ("liver", "tumor")
"""Structures the CRF can refine and the opening can open
(``SegmentOptions.crf_targets``, ``SegmentOptions.opening_targets``)."""
STAGES = ("load", "liver_net", "roi", "tumor_net", "crf", "opening", "labels", "write")
"""Timing keys of one volume, in pipeline order (``load``/``write`` are the runner's)."""

ProgressFn = Callable[[str, int, int], None]


class CrfScope(str, enum.Enum):
    """Where the 3D dense CRF runs."""

    ROI = "roi"  # bounding box of probability > 0.5 plus a margin
    VOLUME = "volume"  # the whole volume (the original; slow, memory hungry)


class CrfImage(str, enum.Enum):
    """Which intensities feed the CRF's bilateral term (both min-max scaled to 0..255)."""

    WINDOW = "window"  # the network input: HU clipped to [-150, 250]
    HU = "hu"  # the raw HU values


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """Options of the cascade; defaults follow the original (module docstring)."""

    #: stacks per network call, or "auto": ``batch_pixels`` pixels per call (1 at
    #: 512x512, 4 at 256x256; TensorFlow's activations grow with the batch).
    batch_size: int | str = AUTO_BATCH
    batch_pixels: int = BATCH_PIXELS
    mixed_precision: bool = False
    jit_compile: bool = False
    crop_variant: str = "original"
    #: how each slice's probability comes from the stacks holding it
    #: (``preprocess.SLICE_FUSIONS``): "middle" as the original, or "mean".
    slice_fusion: str = "middle"
    #: test-time shifts (rows, cols) of both networks' input: each adds one
    #: network pass, and the prediction is the mean of the plain one and the
    #: shifted ones moved back (not the original; flips would need a network
    #: trained with flips).
    tta_shifts: tuple[tuple[int, int], ...] = ()
    threshold: float = 0.5
    liver_mask: bool = True
    crf: bool = True
    #: structures refined by the CRF (with ``crf`` on); the others are
    #: thresholded. The bilateral term can erase small low-contrast tumours.
    crf_targets: tuple[str, ...] = CRF_TARGETS
    crf_on: str = CrfScope.ROI.value
    crf_margin: int = 10
    crf_image: str = CrfImage.WINDOW.value
    crf_params: crf_lib.CrfParams = crf_lib.CrfParams()
    #: voxels of one CRF (~200 bytes each) before it runs in overlapping z slabs
    #: (``liverseg.postprocess.crf.z_slabs``; an approximation); 0: no limit.
    crf_max_voxels: int = crf_lib.DEFAULT_MAX_VOXELS
    #: "reference": kernel widths scaled to the in-plane size (identity at
    #: 512x512); "voxels": the widths as given at every size.
    crf_spatial_scale: str = "reference"
    opening: bool = True
    #: structures opened (with ``opening`` on); an opening erodes one voxel of
    #: boundary wherever the 6-neighbour cross does not fit (thin slices' tips).
    opening_targets: tuple[str, ...] = CRF_TARGETS
    tumor_in_final_liver: bool = True
    keep_probabilities: bool = True

    def __post_init__(self):
        if self.crop_variant not in pp.CROP_VARIANTS:
            raise ConfigError(f"crop_variant must be one of {pp.CROP_VARIANTS}, "
                              f"got {self.crop_variant!r}")
        for name, enum_type in (("crf_on", CrfScope), ("crf_image", CrfImage)):
            value = getattr(self, name)
            allowed = tuple(e.value for e in enum_type)
            if isinstance(value, enum.Enum):
                value = value.value
                object.__setattr__(self, name, value)
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
        self.predictor_options()  # checks batch_size and batch_pixels
        check_slice_fusion(self.slice_fusion)
        object.__setattr__(self, "tta_shifts", check_shifts(self.tta_shifts))
        if not 0.0 < float(self.threshold) < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold!r}")
        if self.crf_spatial_scale not in CRF_SPATIAL_SCALES:
            raise ConfigError(f"crf_spatial_scale must be one of {CRF_SPATIAL_SCALES}, "
                              f"got {self.crf_spatial_scale!r}")
        for name in ("crf_targets", "opening_targets"):
            object.__setattr__(self, name, _checked_targets(name, getattr(self, name)))
        if isinstance(self.crf_max_voxels, bool) or not isinstance(self.crf_max_voxels, int) \
                or self.crf_max_voxels < 0:
            raise ConfigError(f"crf_max_voxels must be a non-negative integer (0: no limit), "
                              f"got {self.crf_max_voxels!r}")
        if isinstance(self.crf_margin, bool) or not isinstance(self.crf_margin, int) \
                or self.crf_margin < 0:
            raise ConfigError(f"crf_margin must be a non-negative integer, got {self.crf_margin!r}")

    def crf_for(self, structure: str) -> bool:
        """Whether the CRF refines ``structure`` ("liver" or "tumor")."""
        return self.crf and structure in self.crf_targets

    def opening_for(self, structure: str) -> bool:
        """Whether the opening applies to ``structure`` ("liver" or "tumor")."""
        return self.opening and structure in self.opening_targets

    def predictor_options(self) -> PredictorOptions:
        return PredictorOptions(batch_size=self.batch_size, jit_compile=self.jit_compile,
                                mixed_precision=self.mixed_precision,
                                batch_pixels=self.batch_pixels)


@dataclasses.dataclass(eq=False)
class SegmentationResult:
    """Label map (uint8 0/1/2, the volume's shape) and what led to it.

    ``liver_probability`` is the float32 liver net output (None when
    ``keep_probabilities`` is off). The tumour probability is kept compact
    (``tumor_region`` of the volume: ROI box rows, columns and the ROI
    slices' range); ``tumor_probability`` expands it to full size on demand.
    ``timings`` holds seconds per stage (``STAGES``) and ``total``.
    """

    labels: np.ndarray
    liver_probability: np.ndarray | None
    tumor_probability_region: np.ndarray | None
    tumor_region: tuple[slice, slice, slice] | None
    has_tumor_model: bool
    roi: pp.RoiBox | None
    roi_slices: np.ndarray
    timings: dict[str, float]
    probabilities_kept: bool = True
    details: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def tumor_probability(self) -> np.ndarray | None:
        """Full-size float32 tumour probability (0 outside the ROI region); None without
        a tumour model or when probabilities were not kept."""
        if not (self.has_tumor_model and self.probabilities_kept):
            return None
        full = np.zeros(self.labels.shape, np.float32)
        if self.tumor_region is not None:
            full[self.tumor_region] = self.tumor_probability_region
        return full

    def voxel_counts(self) -> dict[str, int]:
        """Voxels labelled liver (1 or 2) and tumour (2)."""
        tumour = int(np.count_nonzero(self.labels == 2))
        return {"liver": int(np.count_nonzero(self.labels)), "tumor": tumour}


def _checked_targets(name: str, targets) -> tuple[str, ...]:
    """``targets`` as a duplicate-free tuple of ``CRF_TARGETS`` names (ConfigError otherwise)."""
    if isinstance(targets, str) or not all(isinstance(t, str) for t in targets):
        raise ConfigError(f"{name} must be a tuple of names from {CRF_TARGETS}, got {targets!r}")
    targets = tuple(dict.fromkeys(targets))
    unknown = [t for t in targets if t not in CRF_TARGETS]
    if unknown:
        raise ConfigError(f"{name}: unknown structure(s) {', '.join(map(repr, unknown))}; "
                          f"choose from {CRF_TARGETS}")
    return targets


def _as_model(model_or_path, what: str, expected_stage: str):
    """A Keras model from a model object or a path (liverseg directory or .keras)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        from liverseg.models import load_model

        model = load_model(model_or_path)
    else:
        model = model_or_path
    if model is None or not hasattr(model, "inputs"):
        raise ConfigError(f"{what} must be a Keras model or a model path, got {model_or_path!r}")
    from liverseg.models import model_config_of

    try:
        stage = model_config_of(model).stage
    except ConfigError:
        stage = None  # not a liverseg network name: accepted as is (custom models)
    if stage is not None and stage != expected_stage:
        where = f"{os.fspath(model_or_path)}: " if isinstance(model_or_path, (str, os.PathLike)) else ""
        raise ConfigError(f"{where}{what} holds a {stage} network, expected a {expected_stage} "
                          f"network (were the liver and tumour models swapped?)")
    return model


def _grow(sl: slice, size: int, minimum: int) -> slice:
    """``sl`` widened around its centre to at least ``minimum`` (within 0..size)."""
    length = sl.stop - sl.start
    if length >= minimum:
        return sl
    start = sl.start - (minimum - length) // 2
    start = min(max(start, 0), max(size - minimum, 0))
    return slice(start, min(start + minimum, size))


class Segmenter:
    """The cascade: liver net, ROI, tumour net, masking, CRF, opening, labels.

    ``liver_model`` / ``tumor_model``: Keras models or model paths
    (``liverseg.models.load_model``); without a tumour model the output has
    labels 0 and 1 only. One predictor (one traced function) per network is
    reused for every volume.
    """

    def __init__(self, liver_model, tumor_model=None, options: SegmentOptions = SegmentOptions()):
        self.options = options
        popts = options.predictor_options()
        self.liver = StackPredictor(_as_model(liver_model, "liver model", "liver"), popts)
        self.tumor = None
        if tumor_model is not None:
            self.tumor = StackPredictor(_as_model(tumor_model, "tumour model", "tumor"), popts)

    @property
    def min_slices(self) -> int:
        nets = [self.liver] + ([self.tumor] if self.tumor is not None else [])
        return max(p.number_slices for p in nets)

    def check_volume(self, data: np.ndarray, path: str) -> None:
        """Raises NiftiError (naming ``path``) if the cascade cannot run on ``data``."""
        if data.ndim != 3:
            raise NiftiError(path, f"expected a 3D volume, got shape {data.shape}")
        if data.dtype.kind not in "iuf":
            raise NiftiError(path, f"expected numeric CT values, got dtype {data.dtype}")
        x, y, z = data.shape
        if z < self.min_slices:
            raise NiftiError(path, f"volume has {z} slice(s) along its third axis; the cascade "
                                   f"needs at least {self.min_slices}")
        if min(x, y) < MIN_NET_SIZE:
            raise NiftiError(path, f"slices are {x}x{y} pixels; the networks need at least "
                                   f"{MIN_NET_SIZE}x{MIN_NET_SIZE}")

    def liver_probability(self, hu: np.ndarray, intensity: tuple[float, float] | None = None, *,
                          stats: dict | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        """float32 [x, y, z] liver net probability of every slice (original channel choice)."""
        if intensity is None:
            intensity = pp.intensity_range(hu)
        cb = None if progress is None else (lambda d, t: progress("liver_net", d, t))
        return predict_slices(self.liver, hu, intensity, fusion=self.options.slice_fusion,
                              shifts=self.options.tta_shifts, stats=stats, progress=cb)

    def segment(self, volume: NiftiVolume | np.ndarray, *, liver_probability: np.ndarray | None = None,
                progress: ProgressFn | None = None) -> SegmentationResult:
        """Runs the cascade on one volume (``NiftiVolume`` or [x, y, z] HU array).

        ``liver_probability`` (float32, the volume's shape) replaces the
        liver net, e.g. when it was computed before. ``progress(stage, done,
        total)`` is called during the network stages.
        """
        opts = self.options
        if isinstance(volume, NiftiVolume):
            hu, path = volume.data, volume.path
        else:
            hu, path = np.asarray(volume), "<array>"
        self.check_volume(hu, path)
        timings = {k: 0.0 for k in STAGES if k not in ("load", "write")}
        details: dict[str, float] = {}
        start = time.perf_counter()

        t = time.perf_counter()
        intensity = pp.intensity_range(hu)
        if liver_probability is None:
            stats: dict[str, float] = {}
            liver_prob = self.liver_probability(hu, intensity, stats=stats, progress=progress)
            details.update({f"liver_{k}": v for k, v in stats.items()})
        else:
            liver_prob = np.asarray(liver_probability, dtype=np.float32)
            liver_probability = None  # one reference, so the caller can hand it over
            if liver_prob.shape != hu.shape:
                raise ValueError(f"liver_probability shape {liver_prob.shape} does not match "
                                 f"the volume's {hu.shape}")
        liver_mask = liver_prob > opts.threshold
        timings["liver_net"] = time.perf_counter() - t

        t = time.perf_counter()
        box = pp.liver_roi_box(liver_mask)
        roi_slices = np.flatnonzero(pp.roi_slice_mask(liver_mask))
        timings["roi"] = time.perf_counter() - t

        t = time.perf_counter()
        tumor_prob, tumor_region = None, None
        if self.tumor is not None and box is not None and roi_slices.size:
            tumor_prob, tumor_region = self._tumor_probability(
                hu, intensity, box, roi_slices, liver_mask, details, progress)
        timings["tumor_net"] = time.perf_counter() - t
        del liver_mask

        t = time.perf_counter()
        kept = opts.keep_probabilities
        crf_image = self._crf_image_fn(hu, intensity)
        whole = tuple(slice(0, n) for n in hu.shape)
        job = self._crf_job(liver_prob, whole, hu.shape, opts.crf_for("liver"))
        if not kept:
            liver_prob = None  # the CRF holds its box only: free the full-size float array
        liver_final = _full_size(self._run_crf(job, hu, crf_image), hu.shape)
        del job
        # the tumour result stays box-sized: (mask, box) or (None, None)
        tumor_final = tumor_box = None
        if tumor_prob is not None:
            job = self._crf_job(tumor_prob, tumor_region, hu.shape, opts.crf_for("tumor"))
            if not kept:
                tumor_prob = None
            tumor_final, tumor_box = self._run_crf(job, hu, crf_image)
            del job
        timings["crf"] = time.perf_counter() - t

        t = time.perf_counter()
        if opts.opening_for("liver"):
            liver_final = morphology.opening(liver_final)
        if tumor_final is not None and opts.opening_for("tumor"):
            # zero outside its box, so opening the box alone is the same
            tumor_final = morphology.opening(tumor_final)
        timings["opening"] = time.perf_counter() - t

        t = time.perf_counter()
        labels = liver_final.view(np.uint8)  # bool -> 0/1 without a copy
        if tumor_final is not None:
            if opts.liver_mask and opts.tumor_in_final_liver:
                np.logical_and(tumor_final, liver_final[tumor_box], out=tumor_final)
            labels[tumor_box][tumor_final] = 2
        timings["labels"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start

        return SegmentationResult(
            labels=labels, liver_probability=liver_prob,
            tumor_probability_region=tumor_prob if kept else None,
            tumor_region=tumor_region if kept else None, has_tumor_model=self.tumor is not None,
            roi=box, roi_slices=roi_slices, timings=timings, probabilities_kept=kept,
            details=details)

    def _tumor_probability(self, hu, intensity, box, roi_slices, liver_mask, details, progress):
        """Tumour net on the ROI slices' crops; (probability, region) with the
        masked probability over ``region`` = (rows, cols, ROI slice range)."""
        rows, cols = box.slices(self.options.crop_variant)
        x, y, _ = hu.shape
        rows, cols = _grow(rows, x, MIN_NET_SIZE), _grow(cols, y, MIN_NET_SIZE)
        stats: dict[str, float] = {}
        cb = None if progress is None else (lambda d, t: progress("tumor_net", d, t))
        crop = predict_slices(self.tumor, hu, intensity, roi_slices, region=(rows, cols),
                              fusion=self.options.slice_fusion, shifts=self.options.tta_shifts,
                              stats=stats, progress=cb)
        details.update({f"tumor_{k}": v for k, v in stats.items()})
        z0, z1 = int(roi_slices[0]), int(roi_slices[-1]) + 1
        region = (rows, cols, slice(z0, z1))
        prob = np.zeros((crop.shape[0], crop.shape[1], z1 - z0), np.float32)
        prob[:, :, roi_slices - z0] = crop
        if self.options.liver_mask:
            prob[~liver_mask[region]] = 0.0
        return prob, region

    def _crf_image_fn(self, hu: np.ndarray, intensity) -> Callable:
        """``f(box) -> (image_of, (lo, hi))``: ``image_of(zs)`` is the CRF's image over
        the box's z range ``zs`` (relative to the box; made per CRF slab), ``(lo, hi)``
        the range that scales it to 0..255 as the whole volume would be."""
        if not self.options.crf:
            return lambda box: None
        if self.options.crf_image == CrfImage.WINDOW.value:
            return lambda box: (lambda zs: _windowed(hu, box, zs, intensity), (0.0, 255.0))
        hu_range = (float(np.min(hu)), float(np.max(hu)))
        return lambda box: (lambda zs: _sub_box(hu, box, zs), hu_range)

    def _crf_job(self, prob: np.ndarray, region: tuple[slice, slice, slice],
                 shape: tuple[int, ...], use_crf: bool) -> _CrfJob:
        """What the CRF of a probability given over ``region`` of the volume (zero
        elsewhere) needs: its box and the box's probability (a copy unless the box
        is the whole region, so ``prob`` can be freed), or, without CRF, the mask
        ``prob > threshold`` over ``region``.

        The ROI CRF runs on the bounding box of prob > threshold grown by
        ``crf_margin`` voxels (clipped to the volume, not to ``region``).
        """
        opts = self.options
        if not use_crf:
            return _CrfJob(region, mask=prob > opts.threshold)
        if opts.crf_on == CrfScope.VOLUME.value:
            box = tuple(slice(0, n) for n in shape)
        else:
            inner = morphology.bounding_box(prob > opts.threshold)
            if inner is None:
                return _CrfJob(None)
            m = opts.crf_margin
            box = tuple(slice(max(r.start + b.start - m, 0), min(r.start + b.stop + m, n))
                        for r, b, n in zip(region, inner, shape))
        if box == region:
            return _CrfJob(box, prob=prob)
        box_prob = np.zeros(tuple(b.stop - b.start for b in box), np.float32)
        overlap = tuple(slice(max(r.start, b.start), min(r.stop, b.stop))
                        for r, b in zip(region, box))
        box_prob[tuple(slice(o.start - b.start, o.stop - b.start) for o, b in zip(overlap, box))] = \
            prob[tuple(slice(o.start - r.start, o.stop - r.start) for o, r in zip(overlap, region))]
        return _CrfJob(box, prob=box_prob)

    def _run_crf(self, job: _CrfJob, hu: np.ndarray, crf_image: Callable
                 ) -> tuple[np.ndarray | None, tuple[slice, ...] | None]:
        """``(mask, box)``: the bool mask over ``box`` (the CRF's MAP labels, or the
        job's thresholded mask); ``(None, None)`` when nothing is above threshold."""
        if job.mask is not None or job.box is None:
            return job.mask, job.box
        opts = self.options
        image, rng = crf_image(job.box)
        params = opts.crf_params
        if opts.crf_spatial_scale == "reference":
            params = params.spatially_scaled(float(np.sqrt(hu.shape[0] * hu.shape[1])) / 512.0)
        labels = crf_lib.dense_crf_3d(job.prob, image, params, intensity_range=rng,
                                      max_voxels=opts.crf_max_voxels or None)
        return labels.view(bool), job.box


@dataclasses.dataclass
class _CrfJob:
    """One structure's binarisation: a box of the volume (None: nothing above
    threshold) with either the finished ``mask`` or the ``prob`` the CRF refines."""

    box: tuple[slice, ...] | None
    prob: np.ndarray | None = None
    mask: np.ndarray | None = None


def _full_size(result: tuple[np.ndarray | None, tuple[slice, ...] | None],
               shape: tuple[int, ...]) -> np.ndarray:
    """A ``(mask, box)`` pasted into a full-size bool array (background elsewhere)."""
    mask, box = result
    out = np.zeros(shape, bool)
    if box is not None:
        out[box] = mask
    return out


def _sub_box(hu: np.ndarray, box: tuple[slice, ...], zs: slice) -> np.ndarray:
    """``hu[box][:, :, zs]`` as a view."""
    z = box[2]
    return hu[box[0], box[1], z.start + zs.start:z.start + zs.stop]


def _windowed(hu: np.ndarray, box: tuple[slice, ...], zs: slice, intensity) -> np.ndarray:
    """``window_and_scale`` of ``_sub_box(hu, box, zs)`` (float32 0..255)."""
    return pp.window_and_scale(_sub_box(hu, box, zs), *intensity)
