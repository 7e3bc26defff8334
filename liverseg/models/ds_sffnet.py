"""DS-SFFNet and its parent network as Keras functional models.

Structure, names and maths follow docs/ORIGINAL.md section 3 and the original TF1
graphs: VGG-16 backbone (``conv1_1`` ... ``conv5_3``), 16-channel side convs,
feature fusion blocks and a 3x3 transposed-conv decoder (DS-SFFNet only),
four deep-supervision heads and the fused output. Layer names are the leaf
names of the original variable scopes (Keras names cannot hold ``/``);
``converter.py`` holds the one map to the full TF1 names.

Every spatial size H, W >= 16 works for both stages: the decoder crops as
the original tumour net does (a no-op wherever the original liver net runs,
e.g. at multiples of 16), and every head is centre-cropped back to H x W.
"""

from __future__ import annotations

import keras

from liverseg.models.config import OUTPUT_NAMES, SIDE_LEVELS, ModelConfig
from liverseg.models.layers import (
    Bilinear,
    CropToReference,
    SubpixelConv2DTranspose,
    feature_fusion_block,
)

# (block, convs in block, channels) of the VGG-16 backbone.
BACKBONE_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
SIDE_CHANNELS = 16
# Kernel size and stride of the VALID transposed convs upsampling level k to full size.
HEAD_UPSAMPLING = {2: (4, 2), 3: (8, 4), 4: (16, 8), 5: (32, 16)}
# Strides whose VALID head upsampling runs as conv + depth_to_space (same maths):
# TensorFlow's CPU transposed conv is slow at kernel 4 / stride 2 and fine above.
SUBPIXEL_STRIDES = (2,)
# Standard deviation of the original N(0, 0.001) init of every non-backbone conv.
SIDE_INIT_STDDEV = 0.001


def backbone_layer_names() -> list[str]:
    """``conv1_1`` ... ``conv5_3`` in order."""
    return [f"conv{b}_{i}" for b, n, _ in BACKBONE_BLOCKS for i in range(1, n + 1)]


def side_conv_name(level: int) -> str:
    """``conv2_2_16``, ``conv3_3_16``, ``conv4_3_16``, ``conv5_3_16``."""
    return f"conv{level}_{BACKBONE_BLOCKS[level - 1][1]}_16"


class _Initializers:
    """Hands out kernel initialisers, each with its own seed when one is given."""

    def __init__(self, seed: int | None):
        self._seed = seed
        self._count = 0

    def _next_seed(self):
        if self._seed is None:
            return None
        self._count += 1
        return self._seed + self._count

    def backbone(self):
        # The original always starts from ImageNet (load_imagenet_vgg16); for a
        # from-scratch start He init suits the ReLU backbone.
        return keras.initializers.HeNormal(seed=self._next_seed())

    def side(self):
        return keras.initializers.RandomNormal(0.0, SIDE_INIT_STDDEV, seed=self._next_seed())


def build_ds_sffnet(
    stage: str, number_slices: int = 3, variant: str = "original", *, seed: int | None = None
) -> keras.Model:
    """Builds the liver (``stage="liver"``) or tumour (``"tumor"``) network.

    Input [N, H, W, 3] float32 in 0..255 (H, W dynamic, >= 16); output a dict
    of logits ``{"fuse", "dsn_2", "dsn_3", "dsn_4", "dsn_5"}``, each
    [N, H, W, number_slices]. ``variant`` is ``"original"``, ``"paper"`` or
    ``"liverseg2017"`` (see ``ModelConfig``). ``seed`` makes the random
    initialisation reproducible.
    """
    return build_from_config(ModelConfig(stage, number_slices, variant), seed=seed)


def build_from_config(config: ModelConfig, *, seed: int | None = None) -> keras.Model:
    """Builds the network that ``config`` describes (see ``build_ds_sffnet``)."""
    inits = _Initializers(seed)
    head_activation = "relu" if config.head_relu else None

    image = keras.Input((None, None, 3), dtype="float32", name="image")
    net = image
    levels = {}
    for block, repeats, channels in BACKBONE_BLOCKS:
        if block > 1:
            net = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{block - 1}")(net)
        for i in range(1, repeats + 1):
            net = keras.layers.Conv2D(
                channels,
                3,
                padding="same",
                activation="relu",
                name=f"conv{block}_{i}",
                kernel_initializer=inits.backbone(),
                bias_initializer="zeros",
            )(net)
        levels[block] = net

    side = {
        k: keras.layers.Conv2D(
            SIDE_CHANNELS,
            3,
            padding="same",
            name=side_conv_name(k),
            kernel_initializer=inits.side(),
            bias_initializer="zeros",
        )(levels[k])
        for k in SIDE_LEVELS
    }

    if config.has_decoder:
        heads_in = _decoder(side, config, inits, head_activation)
    else:
        heads_in = dict(side)

    outputs = {}
    fused = []
    for k in SIDE_LEVELS:
        kernel, stride = HEAD_UPSAMPLING[k]
        score = keras.layers.Conv2D(
            config.number_slices,
            1,
            activation=head_activation,
            name=f"score-dsn_{k}",
            kernel_initializer=inits.side(),
            bias_initializer="zeros",
        )(heads_in[k])
        score = _transposed(
            config.number_slices, kernel, stride, "valid", f"score-dsn_{k}-up", Bilinear()
        )(score)
        outputs[f"dsn_{k}"] = CropToReference(name=f"dsn_{k}")([score, image])
        multi = _transposed(
            SIDE_CHANNELS, kernel, stride, "valid", f"score-multi{k}-up", Bilinear()
        )(heads_in[k])
        fused.append(CropToReference(name=f"score-multi{k}-crop")([multi, image]))
    concat = keras.layers.Concatenate(axis=-1, name="concat_side")(fused)
    outputs["fuse"] = keras.layers.Conv2D(
        config.number_slices,
        1,
        activation=head_activation,
        name="upscore-fuse",
        kernel_initializer=inits.side(),
        bias_initializer="zeros",
    )(concat)

    return keras.Model(
        image, {name: outputs[name] for name in OUTPUT_NAMES}, name=config.model_name
    )


def _transposed(filters, kernel, stride, padding, name, initializer):
    """Frozen, bias-free transposed conv (tf.nn.conv2d_transpose semantics)."""
    layer_class = keras.layers.Conv2DTranspose
    if padding == "valid" and kernel == 2 * stride and stride in SUBPIXEL_STRIDES:
        layer_class = SubpixelConv2DTranspose
    return layer_class(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=initializer,
        trainable=False,
        name=name,
    )


def _decoder(side, config, inits, head_activation):
    """FFBs on every side and the top-down decoder; returns each head's input.

    ``add_up_1 = side_4_att + crop(side_5_up(side_5_att))`` and so on down to
    ``add_up_3`` at level 2; ``add_up_1`` and ``add_up_2`` get an FFB before
    being upsampled again.
    """
    attended = {
        k: feature_fusion_block(side[k], f"side_{k}", make_initializer=inits.side)
        for k in SIDE_LEVELS
    }

    def up_initializer():
        return Bilinear() if config.bilinear_decoder else inits.side()

    top = attended[5]
    sums = {}
    for index, level in enumerate((4, 3, 2), start=1):
        up = _transposed(SIDE_CHANNELS, 3, 2, "same", f"side_{level + 1}_up", up_initializer())(top)
        up = CropToReference(name=f"side_{level + 1}_up_crop")([up, attended[level]])
        sums[level] = keras.layers.Add(name=f"add_up_{index}")([attended[level], up])
        if level > 2:
            top = feature_fusion_block(
                sums[level],
                f"add_up_{index}",
                make_initializer=inits.side,
                br2_activation=head_activation,
            )
    return {2: sums[2], 3: sums[3], 4: sums[4], 5: side[5]}
