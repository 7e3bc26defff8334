"""On-the-fly augmentation of one training example, inside a ``tf.data`` map.

The anchor is nnU-Net v2's default 2D augmentation (``nnUNetTrainer.
get_training_transforms``): the same kinds, order, application probabilities
and ranges, adapted where our data differ (see :class:`AugmentOptions`).

Works on the pipeline's raw element ``{"hu", "lo", "hi", "label", "mask"}``
(HU, before windowing) and returns an element of the same form, so the
pipeline's windowing and scaling follow unchanged:

1. spatial: mirroring, scaling, rotation and elastic deformation become one
   sampling grid of ``patch_size`` whose centre is the image centre plus a
   random integer offset (a random crop of larger images, a random placement
   of smaller ones). Image, labels and loss mask are sampled once, bilinearly,
   from that grid; labels are thresholded at 0.5 afterwards so they stay
   binary. Pixels from outside the source are air (-1024 HU), label 0 and
   loss mask 0 (not in the loss).
2. intensity, in that order: Gaussian noise, Gaussian blur, brightness,
   contrast, simulated low resolution, gamma on the inverted image, gamma.
   They work on HU clipped to the volume's windowed range ``[lo, hi]`` (nnU-Net
   augments data already clipped by its CT normalisation; here windowing
   clips), and the result is clipped to it again so the model input stays in
   0..255. Gamma acts on the 0..1 scale ``(HU - lo) / (hi - lo)`` that
   windowing produces, and is written back in HU (the same model input).

Randomness is stateless: every draw comes from the per-example seed through
a fixed slot per transform, so an example's augmentation depends only on
(seed, options), never on parallelism, and switching one transform on or off
leaves the others' draws unchanged. Each transform with probability 0 is not
built at all; at zero strength each is the identity (exactly, see tests).
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from liverseg.errors import ConfigError

#: HU of pixels sampled from outside the source image (air).
FILL_HU = -1024.0
#: LiTS liver foreground intensity statistics (nnU-Net's CT normalisation:
#: z = (HU - mean) / std); used to express nnU-Net's z-score ranges in HU.
FOREGROUND_MEAN_HU = 100.0
FOREGROUND_STD_HU = 40.0

Range = tuple[float, float]

#: Uniform draws per transform, at fixed places in one vector per example.
_DRAWS = {
    "rotation": 2,
    "scale": 5,
    "elastic": 4,
    "mirror": 2,
    "offset": 2,
    "noise": 2,
    "blur": 3,
    "brightness": 4,
    "contrast": 3,
    "low_resolution": 2,
    "gamma_invert": 3,
    "gamma": 3,
}
#: Random fields, each from its own seed.
_FIELDS = ("elastic_field", "noise_field")


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """Probabilities and ranges of every transform (nnU-Net v2 2D defaults, adapted).

    Each ``*_probability`` is the chance that an example gets the transform;
    ranges are ``(low, high)`` and sampled uniformly unless stated. nnU-Net
    applies some transforms per channel with probability 0.5; a CT case has
    one channel, so those probabilities are the product. Our channels are
    adjacent slices of one scan, so intensity transforms use the same
    parameters for all of them.
    """

    # ---- spatial ---------------------------------------------------------
    #: nnU-Net 0.2.
    rotation_probability: float = 0.2
    #: In-plane degrees; positive turns the content counter-clockwise as shown
    #: with row 0 on top (like ``np.rot90``). nnU-Net's 2D range is +-180 for
    #: square patches, but a half-turn equals mirroring both axes, which would
    #: move the liver to the wrong side; +-15 is nnU-Net's own 2D range for
    #: elongated patches and covers the patient's roll on the table.
    rotation_degrees: Range = (-15.0, 15.0)
    #: nnU-Net 0.2.
    scale_probability: float = 0.2
    #: Factor on the sampling coordinates: larger = smaller objects (nnU-Net's
    #: convention and range, about symmetric in log scale).
    scale_range: Range = (0.7, 1.4)
    #: Chance that a scaled example gets one factor per axis instead of one
    #: for both; nnU-Net always synchronises the axes (0).
    anisotropic_scale_probability: float = 0.0
    #: nnU-Net v2 leaves elastic deformation off by default (0); available.
    elastic_probability: float = 0.0
    #: Spacing of the random control points of the displacement field, as a
    #: fraction of the patch side (its smoothness; nnU-Net's Gaussian sigma
    #: range is (0, 0.2) of the patch; 0 would be pixel noise, hence 0.1).
    elastic_scale: Range = (0.1, 0.2)
    #: Largest displacement as a fraction of the control-point spacing (at
    #: most 5 % of the side with the scales above). Up to 0.3 the field's
    #: steepest slope stays below 1, so the deformation never folds over;
    #: nnU-Net's (0, 10 %) of the side would fold at its finer scales.
    elastic_magnitude: Range = (0.0, 0.3)
    #: Chance to mirror along (rows, columns). nnU-Net mirrors both axes with
    #: 0.5, but CT anatomy is lateralised (the liver is on the patient's right)
    #: and the inference does not mirror, so off; kept available.
    mirror_probability: tuple[float, float] = (0.0, 0.0)
    #: Random integer offset of the patch centre (crop position); False
    #: centres every patch (nnU-Net's data loader picks random positions).
    random_crop: bool = True

    # ---- intensity (HU) ----------------------------------------------------
    #: nnU-Net 0.1.
    noise_probability: float = 0.1
    #: Noise standard deviation in HU. nnU-Net draws it uniformly from
    #: (0, 0.1) z-units (its "noise_variance" is used as the std) = (0, 4) HU at
    #: the foreground std of 40 HU. Independent per slice (nnU-Net shares one
    #: noise field between channels, which here are different slices).
    noise_sigma_hu: Range = (0.0, 0.1 * FOREGROUND_STD_HU)
    #: nnU-Net 0.2 per example x 0.5 per channel.
    blur_probability: float = 0.1
    #: Gaussian sigma in pixels, drawn separately for rows and columns
    #: (nnU-Net's range, axes not synchronised).
    blur_sigma: Range = (0.5, 1.0)
    #: nnU-Net 0.15 (its multiplicative brightness).
    brightness_probability: float = 0.15
    #: Factor ``a`` in ``HU' = centre + a * (HU - centre) + b``; nnU-Net
    #: multiplies z-scored intensities, i.e. scales about the foreground mean.
    #: Drawn as nnU-Net's BGContrast: half the time below 1, half above.
    brightness_range: Range = (0.75, 1.25)
    #: ``centre`` above: the foreground mean HU (nnU-Net's z-score origin).
    brightness_centre_hu: float = FOREGROUND_MEAN_HU
    #: Additive ``b`` above in HU (e.g. contrast-phase enhancement); nnU-Net
    #: has no additive shift, so 0.
    brightness_shift_hu: Range = (0.0, 0.0)
    #: nnU-Net 0.15.
    contrast_probability: float = 0.15
    #: Factor about the patch mean, result clipped to the patch's previous
    #: range (nnU-Net's ContrastTransform with preserve_range; BGContrast).
    contrast_range: Range = (0.75, 1.25)
    #: nnU-Net 0.25 per example x 0.5 per channel.
    low_resolution_probability: float = 0.125
    #: Downsampling factor (same for both axes), nearest down, bilinear up
    #: (nnU-Net's SimulateLowResolution).
    low_resolution_scale: Range = (0.5, 1.0)
    #: nnU-Net 0.1: gamma on the inverted 0..1 image, ``1 - (1 - y) ** g``.
    #: It reshapes the bright end as plain gamma does the dark end; windowed
    #: CT has meaningful tissue at both ends (fat, enhanced vessels), so kept.
    gamma_invert_probability: float = 0.1
    #: nnU-Net 0.3: ``y ** g`` on the windowed 0..1 image.
    gamma_probability: float = 0.3
    #: nnU-Net's range, drawn as BGContrast.
    gamma_range: Range = (0.7, 1.5)
    #: Restore the patch's mean and std after gamma (nnU-Net always does), so
    #: gamma changes the shape of the intensity curve, not the overall level.
    gamma_retain_stats: bool = True

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # e.g. from a JSON config; kept hashable
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if f.name.endswith("_probability"):
                values = value if f.name == "mirror_probability" else (value,)
                if f.name == "mirror_probability" and len(values) != 2:
                    raise ConfigError(
                        f"augment {f.name} needs two probabilities (rows, columns), got {value!r}"
                    )
                for p in values:
                    if not _is_number(p) or not 0.0 <= p <= 1.0:
                        raise ConfigError(f"augment {f.name} must be in [0, 1], got {value!r}")
        low_bounds = {
            "rotation_degrees": None,
            "scale_range": 0.0,
            "elastic_scale": 0.0,
            "elastic_magnitude": -1.0,
            "noise_sigma_hu": -1.0,
            "blur_sigma": -1.0,
            "brightness_range": -1.0,
            "brightness_shift_hu": None,
            "contrast_range": -1.0,
            "low_resolution_scale": 0.0,
            "gamma_range": 0.0,
        }
        for name, exclusive_floor in low_bounds.items():
            value = getattr(self, name)
            if (
                not isinstance(value, (tuple, list))
                or len(value) != 2
                or not all(_is_number(v) and math.isfinite(v) for v in value)
            ):
                raise ConfigError(
                    f"augment {name} must be a (low, high) pair of numbers, got {value!r}"
                )
            if value[0] > value[1]:
                raise ConfigError(f"augment {name} is inverted: low {value[0]} > high {value[1]}")
            if exclusive_floor == 0.0 and value[0] <= 0:
                raise ConfigError(f"augment {name} must be > 0, got {value!r}")
            if exclusive_floor == -1.0 and value[0] < 0:
                raise ConfigError(f"augment {name} must be >= 0, got {value!r}")
        if self.low_resolution_scale[1] > 1:
            raise ConfigError(
                f"augment low_resolution_scale must be in (0, 1], got {self.low_resolution_scale!r}"
            )
        if not _is_number(self.brightness_centre_hu) or not math.isfinite(
            self.brightness_centre_hu
        ):
            raise ConfigError(
                f"augment brightness_centre_hu must be a number, got {self.brightness_centre_hu!r}"
            )

    @classmethod
    def crop_only(cls) -> AugmentOptions:
        """Every transform off: only the (random) crop or pad to the patch size."""
        zero = {f.name: 0.0 for f in dataclasses.fields(cls) if f.name.endswith("_probability")}
        zero["mirror_probability"] = (0.0, 0.0)
        return cls(**zero)

    @property
    def any_spatial(self) -> bool:
        return (
            self.rotation_probability > 0
            or self.scale_probability > 0
            or self.elastic_probability > 0
            or any(p > 0 for p in self.mirror_probability)
        )

    @property
    def any_intensity(self) -> bool:
        return any(
            p > 0
            for p in (
                self.noise_probability,
                self.blur_probability,
                self.brightness_probability,
                self.contrast_probability,
                self.low_resolution_probability,
                self.gamma_invert_probability,
                self.gamma_probability,
            )
        )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_patch_size(patch_size) -> tuple[int, int] | None:
    """``patch_size`` as a pair of positive ints (or None); ConfigError otherwise."""
    if patch_size is None:
        return None
    if (
        not isinstance(patch_size, (tuple, list))
        or len(patch_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in patch_size)
    ):
        raise ConfigError(
            f"patch_size must be two positive ints (rows, columns), got {patch_size!r}"
        )
    return int(patch_size[0]), int(patch_size[1])


# ---- random draws ----------------------------------------------------------
class _Random:
    """One example's random numbers: uniforms per transform and seeds for fields."""

    def __init__(self, seed):
        split = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 1 + len(_FIELDS))
        self._uniforms = tf.random.stateless_uniform([sum(_DRAWS.values())], split[0])
        self.seeds = {name: split[1 + i] for i, name in enumerate(_FIELDS)}

    def uniform(self, transform: str) -> tf.Tensor:
        start = 0
        for name, n in _DRAWS.items():
            if name == transform:
                return self._uniforms[start : start + n]
            start += n
        raise KeyError(transform)


def _between(u, bounds: Range) -> tf.Tensor:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (hi - lo) * u if hi > lo else tf.fill(tf.shape(u), tf.constant(lo, tf.float32))


def _around_one(branch, u, bounds: Range) -> tf.Tensor:
    """nnU-Net's BGContrast: half the draws in (low, 1), half in (1, high)."""
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < 1.0 < hi:
        return _between(u, bounds)
    return tf.where(branch < 0.5, lo + (1.0 - lo) * u, 1.0 + (hi - 1.0) * u)


def _maybe(apply, fn, x):
    return tf.cond(apply, lambda: fn(x), lambda: x)


# ---- spatial ---------------------------------------------------------------
def bilinear_sample(source: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """Samples ``source`` [H, W, K] float32 at float ``rows``, ``cols`` [P, Q]; zero outside.

    At integer coordinates the result is the source value exactly. Written
    here because ``keras.ops.image.map_coordinates`` needs a static input
    shape (ours vary per example) and interpolates along the channel axis too
    (8 gathers, not 4), and ``ImageProjectiveTransformV3`` cannot take a
    displacement field.
    """
    shape = tf.shape(source)
    h, w = shape[0], shape[1]
    # Zero border (1 before, 2 after): once coordinates are clipped to
    # [-1, size], every corner outside the source lands on it.
    padded = tf.pad(source, [[1, 2], [1, 2], [0, 0]])
    rows = tf.clip_by_value(rows, -1.0, tf.cast(h, tf.float32))
    cols = tf.clip_by_value(cols, -1.0, tf.cast(w, tf.float32))
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    stride = w + 3
    i00 = (tf.cast(r0, tf.int32) + 1) * stride + tf.cast(c0, tf.int32) + 1
    index = tf.stack([i00, i00 + 1, i00 + stride, i00 + stride + 1])
    weights = tf.stack([(1.0 - fr) * (1.0 - fc), (1.0 - fr) * fc, fr * (1.0 - fc), fr * fc])
    corners = tf.gather(tf.reshape(padded, [(h + 3) * stride, -1]), index)
    return tf.reduce_sum(corners * weights[..., None], axis=0)


def _elastic_field(rand, u, p, q, opts: AugmentOptions):
    """Smooth random displacement (rows, cols) [P, Q] each, in pixels."""
    spacing = _between(u[1:2], opts.elastic_scale)[0]
    size = tf.stack([p, q])
    knots = tf.minimum(
        tf.maximum(tf.cast(tf.math.ceil(1.0 / spacing), tf.int32) + 1, 2), tf.maximum(size, 2)
    )
    noise = tf.random.stateless_normal(tf.concat([knots, [2]], 0), rand.seeds["elastic_field"])
    field = tf.image.resize(noise, size, method="bicubic")
    magnitude = _between(u[2:4], opts.elastic_magnitude) * tf.cast(size / knots, tf.float32)
    peak = tf.reduce_max(tf.abs(field), axis=[0, 1])
    field = field * tf.math.divide_no_nan(magnitude, peak)
    return field[..., 0], field[..., 1]


def _warp(sources, params, offset, p, q, opts: AugmentOptions, rand):
    """Sampling on the transformed grid, for examples rotated, scaled or deformed."""
    pf, qf = tf.cast(p, tf.float32), tf.cast(q, tf.float32)
    dr, dc = tf.meshgrid(
        tf.range(pf) - (pf - 1.0) / 2.0, tf.range(qf) - (qf - 1.0) / 2.0, indexing="ij"
    )
    if "elastic" in params:

        def deform(d):
            er, ec = _elastic_field(rand, params["elastic"], p, q, opts)
            return d[0] + er, d[1] + ec

        dr, dc = _maybe(params["elastic_on"], deform, (dr, dc))
    dr = dr * tf.where(params["flip_rows"], -1.0, 1.0)
    dc = dc * tf.where(params["flip_cols"], -1.0, 1.0)
    if "scale" in params:
        dr, dc = dr * params["scale"][0], dc * params["scale"][1]
    if "angle" in params:
        cos, sin = tf.cos(params["angle"]), tf.sin(params["angle"])
        dr, dc = cos * dr + sin * dc, cos * dc - sin * dr
    # Grid centre = patch centre + integer offset: at the identity the grid
    # lands on pixel centres and reproduces them exactly.
    rows = dr + (tf.cast(offset[0], tf.float32) + (pf - 1.0) / 2.0)
    cols = dc + (tf.cast(offset[1], tf.float32) + (qf - 1.0) / 2.0)
    # Read (and cast) only the source region the grid covers.
    shape = tf.shape(sources[0])
    lo = [
        tf.clip_by_value(tf.cast(tf.floor(tf.reduce_min(x)), tf.int32), 0, n - 1)
        for x, n in ((rows, shape[0]), (cols, shape[1]))
    ]
    hi = [
        tf.clip_by_value(tf.cast(tf.floor(tf.reduce_max(x)), tf.int32) + 1, 0, n - 1)
        for x, n in ((rows, shape[0]), (cols, shape[1]))
    ]
    region = [tf.cast(x[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1], tf.float32) for x in sources]
    region[1] = tf.minimum(region[1], 1.0)  # labels 0/1
    c = sources[0].shape[-1]
    region = tf.concat(region + [tf.ones_like(region[0][..., :1])], axis=-1)
    values = bilinear_sample(
        region, rows - tf.cast(lo[0], tf.float32), cols - tf.cast(lo[1], tf.float32)
    )
    valid = values[..., -1:]
    hu = values[..., :c] + FILL_HU * (1.0 - valid)
    label = tf.cast(values[..., c : 2 * c] > 0.5, tf.uint8)
    return hu, label, values[..., 2 * c : 3 * c]


def _shift(sources, params, offset, p, q):
    """Integer crop / pad (and mirroring): no interpolation needed."""
    shape = tf.shape(sources[0])
    start = tf.maximum(offset, 0)
    stop = tf.maximum(tf.minimum(offset + tf.stack([p, q]), shape[:2]), start)
    pads = [
        [start[0] - offset[0], offset[0] + p - stop[0]],
        [start[1] - offset[1], offset[1] + q - stop[1]],
        [0, 0],
    ]
    hu, label, mask = (x[start[0] : stop[0], start[1] : stop[1]] for x in sources)
    hu = tf.pad(tf.cast(hu, tf.float32), pads, constant_values=FILL_HU)
    label = tf.pad(tf.minimum(label, 1), pads)
    mask = tf.pad(tf.cast(mask, tf.float32), pads)
    for axis, flip in ((0, params["flip_rows"]), (1, params["flip_cols"])):
        hu, label, mask = _maybe(
            flip, lambda t, a=axis: tuple(tf.reverse(v, [a]) for v in t), (hu, label, mask)
        )
    return hu, tf.cast(label, tf.uint8), mask


def _spatial(element: dict, rand, opts: AugmentOptions, patch_size) -> dict:
    hu, label, mask = element["hu"], element["label"], element["mask"]
    c = hu.shape[-1]
    shape = tf.shape(hu)
    if patch_size is None:
        p, q = shape[0], shape[1]
    else:
        p, q = tf.constant(patch_size[0]), tf.constant(patch_size[1])

    no = tf.constant(False)
    warped = no
    params = {"flip_rows": no, "flip_cols": no}
    if opts.elastic_probability > 0:
        u = rand.uniform("elastic")
        params["elastic"], params["elastic_on"] = u, u[0] < opts.elastic_probability
        warped = warped | params["elastic_on"]
    if any(pm > 0 for pm in opts.mirror_probability):
        u = rand.uniform("mirror")
        params["flip_rows"] = u[0] < opts.mirror_probability[0]
        params["flip_cols"] = u[1] < opts.mirror_probability[1]
    if opts.scale_probability > 0:
        u = rand.uniform("scale")
        iso = _between(u[1:2], opts.scale_range)[0]
        per_axis = _between(u[2:4], opts.scale_range)
        aniso = u[4] < opts.anisotropic_scale_probability
        on = u[0] < opts.scale_probability
        params["scale"] = [tf.where(on, tf.where(aniso, per_axis[i], iso), 1.0) for i in (0, 1)]
        warped = warped | on
    if opts.rotation_probability > 0:
        u = rand.uniform("rotation")
        on = u[0] < opts.rotation_probability
        degrees = tf.where(on, _between(u[1:2], opts.rotation_degrees)[0], 0.0)
        params["angle"] = degrees * (math.pi / 180.0)
        warped = warped | on

    excess = tf.stack([shape[0] - p, shape[1] - q])
    if opts.random_crop:
        u = rand.uniform("offset")
        span = tf.cast(tf.abs(excess) + 1, tf.float32)
        offset = tf.minimum(
            tf.minimum(excess, 0) + tf.cast(tf.floor(u * span), tf.int32), tf.maximum(excess, 0)
        )
    else:
        offset = tf.math.floordiv(excess, 2)

    sources = (hu, label, mask)
    if opts.elastic_probability or opts.scale_probability or opts.rotation_probability:
        # Most examples are not warped (64 % with nnU-Net's probabilities): they
        # take the exact and cheap crop.
        out = tf.cond(
            warped,
            lambda: _warp(sources, params, offset, p, q, opts, rand),
            lambda: _shift(sources, params, offset, p, q),
        )
    else:
        out = _shift(sources, params, offset, p, q)
    out_hu, out_label, out_mask = out
    if patch_size is not None:
        for t in out:
            t.set_shape([patch_size[0], patch_size[1], c])
    return dict(element, hu=out_hu, label=out_label, mask=out_mask)


# ---- intensity -------------------------------------------------------------
def _gaussian_taps(sigma, radius: int) -> tf.Tensor:
    k = tf.range(-radius, radius + 1, dtype=tf.float32)
    taps = tf.exp(-0.5 * tf.square(k / tf.maximum(sigma, 1e-3)))
    return taps / tf.reduce_sum(taps)


def _blur(x, sigmas, radius: int):
    """Separable Gaussian blur of [H, W, C] with (row, column) sigmas; edges replicated."""
    static, shape = x.shape, tf.shape(x)
    c = shape[2]
    for axis, sigma in ((0, sigmas[0]), (1, sigmas[1])):
        # Edge replication by gathering clipped indices: valid for any size.
        index = tf.clip_by_value(tf.range(-radius, shape[axis] + radius), 0, shape[axis] - 1)
        padded = tf.gather(x, index, axis=axis)
        taps = _gaussian_taps(sigma, radius)
        kernel = tf.reshape(taps, [-1, 1, 1, 1] if axis == 0 else [1, -1, 1, 1])
        kernel = tf.tile(kernel, tf.stack([1, 1, c, 1]))
        x = tf.nn.depthwise_conv2d(padded[None], kernel, [1, 1, 1, 1], "VALID")[0]
    return tf.ensure_shape(x, static)


def _low_resolution(x, factor):
    size = tf.shape(x)[:2]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32), 1)
    y = tf.image.resize(x, small, method="nearest")
    return tf.ensure_shape(tf.image.resize(y, size, method="bilinear"), x.shape)


def _gamma(x, lo, hi, g, invert: bool, retain_stats: bool):
    span = hi - lo
    y = tf.clip_by_value(tf.math.divide_no_nan(x - lo, span), 0.0, 1.0)
    z = 1.0 - tf.pow(1.0 - y, g) if invert else tf.pow(y, g)
    if retain_stats:
        mean, var = tf.nn.moments(y, axes=[0, 1, 2])
        z_mean, z_var = tf.nn.moments(z, axes=[0, 1, 2])
        z = (z - z_mean) * tf.math.divide_no_nan(tf.sqrt(var), tf.sqrt(z_var)) + mean
        z = tf.clip_by_value(z, 0.0, 1.0)
    return tf.where(tf.equal(g, 1.0), x, lo + span * z)


def _intensity(element: dict, rand, opts: AugmentOptions) -> dict:
    lo = tf.cast(element["lo"], tf.float32)
    hi = tf.cast(element["hi"], tf.float32)
    x = tf.clip_by_value(tf.cast(element["hu"], tf.float32), lo, hi)

    if opts.noise_probability > 0:
        u = rand.uniform("noise")
        sigma = _between(u[1:2], opts.noise_sigma_hu)[0]
        x = _maybe(
            u[0] < opts.noise_probability,
            lambda v: (
                v + sigma * tf.random.stateless_normal(tf.shape(v), rand.seeds["noise_field"])
            ),
            x,
        )
    if opts.blur_probability > 0:
        u = rand.uniform("blur")
        radius = max(1, math.ceil(3.0 * opts.blur_sigma[1]))
        x = _maybe(
            u[0] < opts.blur_probability,
            lambda v: _blur(v, _between(u[1:3], opts.blur_sigma), radius),
            x,
        )
    if opts.brightness_probability > 0:
        u = rand.uniform("brightness")
        a = _around_one(u[1], u[2], opts.brightness_range)
        b = _between(u[3:4], opts.brightness_shift_hu)[0]
        centre = float(opts.brightness_centre_hu)
        x = _maybe(
            u[0] < opts.brightness_probability, lambda v: v + (a - 1.0) * (v - centre) + b, x
        )
    if opts.contrast_probability > 0:
        u = rand.uniform("contrast")
        f = _around_one(u[1], u[2], opts.contrast_range)

        def contrast(v):
            mean = tf.reduce_mean(v)
            return tf.clip_by_value(v + (f - 1.0) * (v - mean), tf.reduce_min(v), tf.reduce_max(v))

        x = _maybe(u[0] < opts.contrast_probability, contrast, x)
    if opts.low_resolution_probability > 0:
        u = rand.uniform("low_resolution")
        factor = _between(u[1:2], opts.low_resolution_scale)[0]
        x = _maybe(
            (u[0] < opts.low_resolution_probability) & (factor < 1.0),
            lambda v: _low_resolution(v, factor),
            x,
        )
    for slot, p, invert in (
        ("gamma_invert", opts.gamma_invert_probability, True),
        ("gamma", opts.gamma_probability, False),
    ):
        if p > 0:
            u = rand.uniform(slot)
            g = _around_one(u[1], u[2], opts.gamma_range)
            x = _maybe(
                u[0] < p,
                lambda v, g=g, invert=invert: _gamma(v, lo, hi, g, invert, opts.gamma_retain_stats),
                x,
            )
    return dict(element, hu=tf.clip_by_value(x, lo, hi))


@tf.autograph.experimental.do_not_convert  # written as a graph already; saves tracing time
def augment_example(
    element: dict, seed, options: AugmentOptions, patch_size: tuple[int, int] | None = None
) -> dict:
    """Augments one raw example; traceable inside ``tf.data.Dataset.map``.

    ``element``: ``{"hu": [h, w, c] HU, "lo", "hi": scalars, "label": [h, w, c]
    0/1, "mask": [h, w, c] float}``. ``seed``: shape [2] int32/int64 stateless
    seed of this example. ``patch_size``: (rows, cols) of the output, or None
    to keep the input's size. Returns the same keys with ``hu`` float32,
    ``label`` uint8 0/1 and ``mask`` float32 in [0, 1] (for a mask in [0, 1]).
    """
    if not isinstance(options, AugmentOptions):
        raise ConfigError(f"augment options must be AugmentOptions, got {type(options).__name__}")
    patch_size = check_patch_size(patch_size)
    rand = _Random(seed)
    out = dict(element)
    if options.any_spatial or patch_size is not None:
        out = _spatial(out, rand, options, patch_size)
    if options.any_intensity:
        out = _intensity(out, rand, options)
    out["hu"] = tf.cast(out["hu"], tf.float32)
    out["label"] = tf.cast(tf.cast(out["label"], tf.float32) > 0, tf.uint8)
    out["mask"] = tf.cast(out["mask"], tf.float32)
    return out
