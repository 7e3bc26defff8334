"""Segments one loaded CT volume through the full cascade (docs/ORIGINAL.md sections 1, 2, 5).

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
5. probabilities to labels (``liverseg.postprocess.finalize``): per
   structure the 3D dense CRF or a threshold, the opening, optionally the
   liver's largest component and a minimum tumour size, then the label map
   (1 liver, 2 tumour inside the final liver).

Choices the original leaves open, and what is done here (the CRF's and the
opening's are in ``liverseg.postprocess.finalize``):

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
import logging
import os
import time
from collections.abc import Callable

import numpy as np

from liverseg.data import preprocess as pp
from liverseg.data.geometry import Geometry, GridTransform
from liverseg.data.nifti import NiftiVolume
from liverseg.data.plans import load_geometry
from liverseg.errors import ConfigError, NiftiError
from liverseg.inference.predictor import (
    AUTO_BATCH,
    BATCH_PIXELS,
    MIN_NET_SIZE,
    PredictorOptions,
    StackPredictor,
    predict_slices,
)
from liverseg.postprocess import crf as crf_lib
from liverseg.postprocess.choice import ORIGINAL_CHOICE, STRUCTURES, PostprocessChoice
from liverseg.postprocess.finalize import (
    CRF_SPATIAL_SCALES,
    CrfImage,
    CrfScope,
    FinalizeOptions,
    Probabilities,
    finalize,
)
from liverseg.utils.options import option

logger = logging.getLogger(__name__)

CRF_TARGETS = STRUCTURES
"""Structures the CRF can refine and the opening can open
(``SegmentOptions.crf_targets``, ``SegmentOptions.opening_targets``)."""
STAGES = ("load", "liver_net", "roi", "tumor_net", "crf", "opening", "labels", "write")
"""Timing keys of one volume, in pipeline order (``load``/``write`` are the runner's)."""

ProgressFn = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """Options of the cascade; defaults follow the original (module docstring).

    ``postprocess`` holds the test-time choices a model directory can store
    (slice fusion, shifted passes, CRF and opening per structure, component
    clean-ups); the other fields say how the cascade runs.
    """

    batch_size: int | str = option(
        AUTO_BATCH,
        "Slice stacks per network call; 0 = automatic: 512x512 pixels per call "
        "(1 stack at 512x512, 4 at 256x256), which bounds TensorFlow's memory on CPU; on a GPU "
        "a larger batch (8-32) is faster.",
        kind="int",
        lower_bound=0,
        zero_means=AUTO_BATCH,
    )
    batch_pixels: int = BATCH_PIXELS
    mixed_precision: bool = option(False, "Compute the networks in bfloat16 (float32 weights).")
    jit_compile: bool = option(False, "Compile the networks with XLA.")
    crop_variant: str = option(
        "original",
        "Tumour ROI crop: 'original' drops the box's last row and column as the "
        "original code, 'paper' keeps the whole box.",
        choices=pp.CROP_VARIANTS,
    )
    postprocess: PostprocessChoice = ORIGINAL_CHOICE
    threshold: float = 0.5
    liver_mask: bool = option(True, "Remove tumour outside the liver (--noliver_mask keeps it).")
    crf_on: str = option(
        CrfScope.ROI.value,
        "Where the CRF runs: the structure's bounding box plus a margin "
        "('roi') or the whole volume (the original; slow, memory hungry).",
        choices=tuple(c.value for c in CrfScope),
    )
    crf_margin: int = 10
    crf_image: str = CrfImage.WINDOW.value
    crf_params: crf_lib.CrfParams = crf_lib.CrfParams()
    crf_max_voxels: int = option(
        crf_lib.DEFAULT_MAX_VOXELS,
        "Voxels of one CRF (~200 bytes each) before it runs in "
        "overlapping z slabs (bounds its memory, slightly changes its result); 0 = no limit.",
        lower_bound=0,
    )
    crf_spatial_scale: str = option(
        "reference",
        "CRF kernel widths: scaled to the in-plane size ('reference', identity "
        "at 512x512) or the original voxel numbers at every size ('voxels').",
        choices=CRF_SPATIAL_SCALES,
    )
    tumor_in_final_liver: bool = True
    keep_probabilities: bool = True

    def __post_init__(self):
        if self.crop_variant not in pp.CROP_VARIANTS:
            raise ConfigError(
                f"crop_variant must be one of {pp.CROP_VARIANTS}, got {self.crop_variant!r}"
            )
        if not isinstance(self.postprocess, PostprocessChoice):
            raise ConfigError(
                f"postprocess must be a PostprocessChoice, got {type(self.postprocess).__name__}"
            )
        self.predictor_options()  # checks batch_size and batch_pixels
        finalize_options = self.finalize_options()  # checks the CRF and component options
        for name in ("crf_on", "crf_image"):
            object.__setattr__(self, name, getattr(finalize_options, name))

    @property
    def slice_fusion(self) -> str:
        return self.postprocess.slice_fusion

    @property
    def tta_shifts(self) -> tuple[tuple[int, int], ...]:
        return self.postprocess.tta_shifts

    def crf_for(self, structure: str) -> bool:
        """Whether the CRF refines ``structure`` ("liver" or "tumor")."""
        return structure in self.postprocess.crf_targets

    def opening_for(self, structure: str) -> bool:
        """Whether the opening applies to ``structure`` ("liver" or "tumor")."""
        return structure in self.postprocess.opening_targets

    def predictor_options(self) -> PredictorOptions:
        return PredictorOptions(
            batch_size=self.batch_size,
            jit_compile=self.jit_compile,
            mixed_precision=self.mixed_precision,
            batch_pixels=self.batch_pixels,
        )

    def finalize_options(self) -> FinalizeOptions:
        """What ``liverseg.postprocess.finalize`` needs of these options."""
        return FinalizeOptions.from_choice(
            self.postprocess,
            threshold=self.threshold,
            liver_mask=self.liver_mask,
            tumor_in_final_liver=self.tumor_in_final_liver,
            crf_on=self.crf_on,
            crf_margin=self.crf_margin,
            crf_image=self.crf_image,
            crf_params=self.crf_params,
            crf_max_voxels=self.crf_max_voxels,
            crf_spatial_scale=self.crf_spatial_scale,
        )

    def with_choice(self, choice: PostprocessChoice | None = None, **changes) -> SegmentOptions:
        """These options with ``choice`` (default: the current one) and single
        choices changed (``slice_fusion="mean"``, ``crf_targets=()``, ...)."""
        choice = self.postprocess if choice is None else choice
        return dataclasses.replace(self, postprocess=dataclasses.replace(choice, **changes))


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
        where = (
            f"{os.fspath(model_or_path)}: " if isinstance(model_or_path, (str, os.PathLike)) else ""
        )
        raise ConfigError(
            f"{where}{what} holds a {stage} network, expected a {expected_stage} "
            f"network (were the liver and tumour models swapped?)"
        )
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

    ``geometry``: the grid the networks run on (``liverseg.data.geometry``):
    each volume is reoriented and resampled in-plane to it, the networks'
    probabilities are brought back to the volume's own grid, and everything
    after them (thresholds, CRF, opening) happens there, so the labels have
    the input's shape and geometry. None (and for bare arrays): the volume
    as stored, the original. ``"model"``: the liver model directory's
    ``plans.json`` when it has one.
    """

    def __init__(
        self,
        liver_model,
        tumor_model=None,
        options: SegmentOptions = SegmentOptions(),
        geometry: Geometry | str | None = None,
    ):
        self.options = options
        if isinstance(geometry, str):
            if geometry != "model":
                raise ConfigError(f"geometry must be a Geometry, 'model' or None, got {geometry!r}")
            geometry = (
                load_geometry(liver_model) if isinstance(liver_model, (str, os.PathLike)) else None
            )
        self.geometry = geometry
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
        self.check_shape(data.shape, data.dtype, path)

    def check_shape(self, shape: tuple[int, ...], dtype, path: str) -> None:
        """``check_volume`` from the shape and dtype alone."""
        if len(shape) != 3:
            raise NiftiError(path, f"expected a 3D volume, got shape {tuple(shape)}")
        if np.dtype(dtype).kind not in "iuf":
            raise NiftiError(path, f"expected numeric CT values, got dtype {np.dtype(dtype)}")
        x, y, z = shape
        if z < self.min_slices:
            raise NiftiError(
                path,
                f"volume has {z} slice(s) along its third axis; the cascade "
                f"needs at least {self.min_slices}",
            )
        if min(x, y) < MIN_NET_SIZE:
            raise NiftiError(
                path,
                f"slices are {x}x{y} pixels; the networks need at least "
                f"{MIN_NET_SIZE}x{MIN_NET_SIZE}",
            )

    def grid_for(self, volume: NiftiVolume | np.ndarray) -> GridTransform | None:
        """The volume's way to the networks' grid, or None when they read it as stored."""
        if self.geometry is None or not isinstance(volume, NiftiVolume):
            return None
        try:
            return GridTransform.for_nifti(volume, self.geometry)
        except ValueError as exc:
            raise NiftiError(
                volume.path, f"cannot bring the volume to the model's grid ({exc})"
            ) from None

    def liver_probability(
        self,
        hu: np.ndarray,
        intensity: tuple[float, float] | None = None,
        *,
        stats: dict | None = None,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """float32 [x, y, z] liver net probability of every slice of ``hu`` as given."""
        if intensity is None:
            intensity = pp.intensity_range(hu)
        cb = None if progress is None else (lambda d, t: progress("liver_net", d, t))
        return predict_slices(
            self.liver,
            hu,
            intensity,
            fusion=self.options.slice_fusion,
            shifts=self.options.tta_shifts,
            stats=stats,
            progress=cb,
        )

    def probabilities(
        self,
        volume: NiftiVolume | np.ndarray,
        *,
        liver_probability: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        timings: dict[str, float] | None = None,
        details: dict[str, float] | None = None,
    ):
        """Steps 1-4: ``(Probabilities on the volume's grid, ROI box, ROI slices)``.

        The ROI box and slices are on the networks' grid (the volume's own
        without a geometry). ``liver_probability`` (float32, the volume's
        shape) replaces the liver net.
        """
        opts = self.options
        hu_in, path = (
            (volume.data, volume.path)
            if isinstance(volume, NiftiVolume)
            else (np.asarray(volume), "<array>")
        )
        grid = self.grid_for(volume)
        if grid is None:
            self.check_volume(hu_in, path)
        else:  # the slice axis is the model grid's, whatever the storage
            self.check_shape(grid.model_shape, hu_in.dtype, path)
        timings = {} if timings is None else timings
        details = {} if details is None else details
        t = time.perf_counter()
        intensity = pp.intensity_range(hu_in)
        hu = hu_in if grid is None else grid.forward(hu_in, order=1)
        if liver_probability is None:
            stats: dict[str, float] = {}
            liver_prob = self.liver_probability(hu, intensity, stats=stats, progress=progress)
            details.update({f"liver_{k}": v for k, v in stats.items()})
        else:
            liver_prob = np.asarray(liver_probability, dtype=np.float32)
            liver_probability = None  # one reference, so the caller can hand it over
            if liver_prob.shape != hu_in.shape:
                raise ValueError(
                    f"liver_probability shape {liver_prob.shape} does not match "
                    f"the volume's {hu_in.shape}"
                )
            if grid is not None:
                liver_prob = grid.forward(liver_prob, order=1)
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
                hu, intensity, box, roi_slices, liver_mask, details, progress
            )
        del liver_mask
        if grid is None:
            probs = Probabilities(liver_prob, tumor_prob, tumor_region)
        else:
            probs = _back_to_input(grid, liver_prob, tumor_prob, tumor_region)
        timings["tumor_net"] = time.perf_counter() - t
        return probs, box, roi_slices

    def segment(
        self,
        volume: NiftiVolume | np.ndarray,
        *,
        liver_probability: np.ndarray | None = None,
        progress: ProgressFn | None = None,
    ) -> SegmentationResult:
        """Runs the cascade on one volume (``NiftiVolume`` or [x, y, z] HU array).

        ``liver_probability`` (float32, the volume's shape) replaces the
        liver net, e.g. when it was computed before. ``progress(stage, done,
        total)`` is called during the network stages.
        """
        opts = self.options
        timings = {k: 0.0 for k in STAGES if k not in ("load", "write")}
        details: dict[str, float] = {}
        start = time.perf_counter()
        probs, box, roi_slices = self.probabilities(
            volume,
            liver_probability=liver_probability,
            progress=progress,
            timings=timings,
            details=details,
        )
        hu = volume.data if isinstance(volume, NiftiVolume) else np.asarray(volume)
        spacing = volume.spacing if isinstance(volume, NiftiVolume) else (1.0, 1.0, 1.0)
        kept = opts.keep_probabilities
        labels = finalize(
            hu,
            pp.intensity_range(hu),
            probs,
            spacing,
            opts.finalize_options(),
            release=not kept,
            timings=timings,
        )
        timings["total"] = time.perf_counter() - start
        return SegmentationResult(
            labels=labels,
            liver_probability=probs.liver if kept else None,
            tumor_probability_region=probs.tumor if kept else None,
            tumor_region=probs.tumor_region if kept else None,
            has_tumor_model=self.tumor is not None,
            roi=box,
            roi_slices=roi_slices,
            timings=timings,
            probabilities_kept=kept,
            details=details,
        )

    def _tumor_probability(self, hu, intensity, box, roi_slices, liver_mask, details, progress):
        """Tumour net on the ROI slices' crops; (probability, region) with the
        masked probability over ``region`` = (rows, cols, ROI slice range)."""
        rows, cols = box.slices(self.options.crop_variant)
        x, y, _ = hu.shape
        rows, cols = _grow(rows, x, MIN_NET_SIZE), _grow(cols, y, MIN_NET_SIZE)
        stats: dict[str, float] = {}
        cb = None if progress is None else (lambda d, t: progress("tumor_net", d, t))
        crop = predict_slices(
            self.tumor,
            hu,
            intensity,
            roi_slices,
            region=(rows, cols),
            fusion=self.options.slice_fusion,
            shifts=self.options.tta_shifts,
            stats=stats,
            progress=cb,
        )
        details.update({f"tumor_{k}": v for k, v in stats.items()})
        z0, z1 = int(roi_slices[0]), int(roi_slices[-1]) + 1
        region = (rows, cols, slice(z0, z1))
        prob = np.zeros((crop.shape[0], crop.shape[1], z1 - z0), np.float32)
        prob[:, :, roi_slices - z0] = crop
        if self.options.liver_mask:
            prob[~liver_mask[region]] = 0.0
        return prob, region


def _back_to_input(
    grid: GridTransform,
    liver: np.ndarray,
    tumor: np.ndarray | None,
    region: tuple[slice, slice, slice] | None,
) -> Probabilities:
    """Model-grid probabilities on the input's grid (linear interpolation)."""
    liver_in = np.asarray(grid.backward(liver, order=1), dtype=np.float32)
    if tumor is None:
        return Probabilities(liver_in)
    full = np.zeros(grid.model_shape, np.float32)
    full[region] = tumor
    tumor_in = grid.backward(full, order=1)
    del full
    return Probabilities.from_full(liver_in, tumor_in)
