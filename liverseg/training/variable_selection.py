"""Which trainable variables an update moves, per supervision mode.

The original builds, for each training phase, one gradient accumulator per
variable whose gradient exists, then walks indices ``0 .. accumulators - 1``
over the *full* gradient list and skips the entries without a gradient. When
every variable has a gradient (supervision strong or weak) this is all of
them. Under supervision "none" no loss term reaches the ``score-dsn_k``
biases, so there are four accumulators fewer than variables and the last four
entries of the list never move: with the list in the original creation order
those are ``score-dsn_5`` (weights, biases) and ``upscore-fuse`` (weights,
biases). Their momentum is neither decayed nor applied.

``"original"`` reproduces that slip; ``"all"`` moves every trainable variable
in every phase (what the original meant to do).
"""

from __future__ import annotations

from collections.abc import Sequence

from liverseg.errors import ConfigError
from liverseg.models.converter import model_config_of, tf1_variable_map

SELECTIONS = ("original", "all")


def _layer_and_leaf(path: str) -> tuple[str, str]:
    layer, _, leaf = path.rpartition("/")
    return layer.rsplit("/", 1)[-1], leaf


def is_side_head(path: str) -> bool:
    """A weight of a ``score-dsn_k`` 1x1 conv, which feeds only the side output ``dsn_k``."""
    layer, _ = _layer_and_leaf(path)
    return layer.startswith("score-dsn_") and not layer.endswith("-up")


def has_gradient(path: str, side_weight: float, decay: float) -> bool:
    """Whether the original's ``compute_gradients`` returns a gradient for ``path``.

    Without side losses a side head is reached only by weight decay, which
    covers kernels and no biases.
    """
    if side_weight or not is_side_head(path):
        return True
    return decay > 0 and _layer_and_leaf(path)[1].startswith("kernel")


def applied_paths(
    creation_order: Sequence[str], side_weight: float, decay: float, selection: str
) -> frozenset[str]:
    """The variable paths an update applies, out of ``creation_order``.

    ``creation_order`` lists every trainable variable in the order of the
    original graph's ``tf.trainable_variables()``.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"variable selection must be one of {SELECTIONS}, got {selection!r}")
    if selection == "all":
        return frozenset(creation_order)
    with_gradient = [has_gradient(p, side_weight, decay) for p in creation_order]
    accumulators = sum(with_gradient)
    return frozenset(p for p, g in zip(creation_order[:accumulators], with_gradient) if g)


def creation_order(model) -> list[str]:
    """Trainable variable paths of ``model`` in the original graph's creation order.

    Networks built by ``build_ds_sffnet`` follow the TF1 variable map (backbone,
    side convs, FFBs, decoder, score-dsn_2..5, upscore-fuse); any other model
    keeps Keras' order.
    """
    keras_paths = [v.path for v in model.trainable_variables]
    try:
        config = model_config_of(model)
    except ConfigError:
        return keras_paths
    trainable = set(keras_paths)
    ordered = []
    for ref in tf1_variable_map(config).values():
        path = getattr(model.get_layer(ref.layer), ref.attr).path
        if path in trainable:
            ordered.append(path)
    return ordered
