"""Independent TF1-style reference of the original DS-SFFNet / parent graphs.

Written from docs/ORIGINAL.md section 3 with ``tf.compat.v1`` variables under the
original names and raw ``tf.nn`` ops, as TF-slim built them: ``conv2d`` +
``bias_add`` (+ ``relu``), 2x2 SAME max pools, ``conv2d_transpose`` with an
explicit dynamic ``output_shape``, and the original ``crop_features``
(``tf.slice`` at ``(in - out) // 2``). Shares no code with ``liverseg.models``.

The original liver net has no crop in its decoder (it only runs where the
pooled sizes pair up, e.g. multiples of 16); ``decoder_crop`` selects it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

SCOPES = {"liver": "seg_liver", "tumor": "seg_lesion"}
BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]
UPSAMPLE = {2: (4, 2), 3: (8, 4), 4: (16, 8), 5: (32, 16)}


def upsample_filt(size):
    """Bilinear taps as in the original ``upsample_filt`` (np.ogrid formulation)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


class _Builder:
    """Creates variables with random, well-scaled values so every path matters."""

    def __init__(self, rng, input_scale):
        self.rng = rng
        self.input_scale = input_scale
        self.values = {}

    def _variable(self, name, value, trainable=True):
        var = v1.get_variable(
            name,
            shape=value.shape,
            dtype=tf.float32,
            initializer=v1.zeros_initializer(),
            trainable=trainable,
        )
        self.values[var.op.name] = value.astype(np.float32)
        return var

    def conv(self, x, name, out, k, relu, in_scale=1.0):
        cin = int(x.shape[-1])
        with v1.variable_scope(name):
            std = np.sqrt(2.0 / (k * k * cin)) / in_scale
            w = self._variable("weights", self.rng.normal(0, std, (k, k, cin, out)))
            b = self._variable("biases", self.rng.normal(0, 0.1, (out,)))
        y = tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME"), b)
        return tf.nn.relu(y) if relu else y

    def deconv(self, x, name, out, k, s, padding):
        cin = int(x.shape[-1])
        with v1.variable_scope(name):
            # Random, asymmetric kernels [kh, kw, out, in] so any layout slip shows.
            std = s / np.sqrt(k * k * cin)
            w = self._variable(
                "weights", self.rng.normal(0, std, (k, k, out, cin)), trainable=False
            )
        shape = tf.shape(x)
        if padding == "VALID":
            h, wd = (shape[1] - 1) * s + k, (shape[2] - 1) * s + k
        else:
            h, wd = shape[1] * s, shape[2] * s
        return tf.nn.conv2d_transpose(
            x, w, tf.stack([shape[0], h, wd, out]), strides=[1, s, s, 1], padding=padding
        )


def crop_features(feature, out_size):
    up_size = tf.shape(feature)
    ini_h = (up_size[1] - out_size[1]) // 2
    ini_w = (up_size[2] - out_size[2]) // 2
    cropped = tf.slice(
        feature, tf.stack([0, ini_h, ini_w, 0]), tf.stack([-1, out_size[1], out_size[2], -1])
    )
    # The original reshapes to restore the static channel count; set_shape does the same.
    cropped.set_shape([None, None, None, feature.shape[-1]])
    return cropped


def build_reference(image, stage, variant, number_slices, rng, decoder_crop=None):
    """Builds the original graph on ``image`` in the current graph.

    Returns ``(outputs, values)``: the five output tensors and the initial value
    of every variable by its full TF1 name.
    """
    head_relu = stage == "tumor" and variant == "original"
    parent = variant == "liverseg2017"
    if decoder_crop is None:
        decoder_crop = stage == "tumor"
    b = _Builder(rng, 255.0)
    im_size = tf.shape(image)
    with v1.variable_scope(SCOPES[stage]):
        net = image
        feats = {}
        for block, repeats, channels in BLOCKS:
            if block > 1:
                net = tf.nn.max_pool2d(net, 2, 2, "SAME")
            with v1.variable_scope(f"conv{block}"):
                for i in range(1, repeats + 1):
                    net = b.conv(
                        net,
                        f"conv{block}_{i}",
                        channels,
                        3,
                        True,
                        in_scale=128.0 if block == 1 and i == 1 else 1.0,
                    )
            feats[block] = net
        side = {
            k: b.conv(feats[k], f"conv{k}_{BLOCKS[k - 1][1]}_16", 16, 3, False)
            for k in (2, 3, 4, 5)
        }

        def ffb(x, prefix, br2_relu):
            g = b.conv(x, f"{prefix}_br_1", 16, 3, True)
            g = b.conv(g, f"{prefix}_br_2", 16, 3, br2_relu)
            return x + x * tf.sigmoid(g)

        if parent:
            head_in = side
        else:
            att = {k: ffb(side[k], f"side_{k}", False) for k in (2, 3, 4, 5)}

            def up_add(top, level):
                up = b.deconv(top, f"side_{level + 1}_up", 16, 3, 2, "SAME")
                if decoder_crop:
                    up = crop_features(up, tf.shape(att[level]))
                return att[level] + up

            add_up_1 = up_add(att[5], 4)
            add_up_1_att = ffb(add_up_1, "add_up_1", head_relu)
            add_up_2 = up_add(add_up_1_att, 3)
            add_up_2_att = ffb(add_up_2, "add_up_2", head_relu)
            add_up_3 = up_add(add_up_2_att, 2)
            head_in = {2: add_up_3, 3: add_up_2, 4: add_up_1, 5: side[5]}

        outputs = {}
        multi = []
        for k in (2, 3, 4, 5):
            kernel, stride = UPSAMPLE[k]
            s = b.conv(head_in[k], f"score-dsn_{k}", number_slices, 1, head_relu)
            s = b.deconv(s, f"score-dsn_{k}-up", number_slices, kernel, stride, "VALID")
            outputs[f"dsn_{k}"] = crop_features(s, im_size)
            f = b.deconv(head_in[k], f"score-multi{k}-up", 16, kernel, stride, "VALID")
            multi.append(crop_features(f, im_size))
        outputs["fuse"] = b.conv(
            tf.concat(multi, axis=3), "upscore-fuse", number_slices, 1, head_relu
        )
    return outputs, b.values


def make_reference(
    checkpoint_prefix,
    stage,
    variant,
    images,
    *,
    number_slices=3,
    seed=0,
    decoder_crop=None,
    with_optimizer=True,
):
    """Builds the original graph, saves its variables with a TF1 Saver, runs it.

    ``images`` is a list of [N, H, W, 3] arrays; returns ``(outputs, values)``
    with one dict of numpy outputs per image and the saved variable values.
    ``with_optimizer`` adds a global step and Momentum slots as the original
    training checkpoints hold.
    """
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, [None, None, None, 3], name="image")
        outputs, values = build_reference(
            image, stage, variant, number_slices, np.random.default_rng(seed), decoder_crop
        )
        if with_optimizer:
            step = v1.train.get_or_create_global_step()
            loss = tf.reduce_sum(outputs["fuse"])
            v1.train.MomentumOptimizer(1e-8, 0.9).minimize(loss, global_step=step)
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            _assign(sess, values)
            saver.save(sess, checkpoint_prefix, write_meta_graph=False)
            results = [sess.run(outputs, {image: x}) for x in images]
    return results, values


def _assign(sess, values):
    """Sets variables by name from numpy values (fed, not baked into the graph)."""
    variables = {v.op.name: v for v in v1.global_variables()}
    feeds, ops = {}, []
    for name, value in values.items():
        holder = v1.placeholder(variables[name].dtype.base_dtype, np.shape(value))
        ops.append(variables[name].assign(holder))
        feeds[holder] = value
    sess.run(ops, feeds)


def write_tf1_checkpoint(checkpoint_prefix, arrays, v1_format=False):
    """Saves ``{full TF1 name: array}`` as tf.compat.v1 variables with a TF1 Saver.

    ``v1_format`` writes the old single-file format of TF-slim's ``vgg_16.ckpt``.
    """
    graph = tf.Graph()
    with graph.as_default():
        for name, value in arrays.items():
            scope, _, leaf = name.rpartition("/")
            value = np.asarray(value)
            with v1.variable_scope(scope or v1.get_variable_scope(), auxiliary_name_scope=False):
                v1.get_variable(
                    leaf,
                    shape=value.shape,
                    dtype=tf.as_dtype(value.dtype),
                    initializer=v1.zeros_initializer(),
                )
        version = v1.train.SaverDef.V1 if v1_format else v1.train.SaverDef.V2
        saver = v1.train.Saver(write_version=version)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            _assign(sess, arrays)
            saver.save(sess, checkpoint_prefix, write_meta_graph=False)
