"""Class-balanced sigmoid cross-entropy and the deep-supervision combination.

Exactly the original loss (docs/ORIGINAL.md section 4): per pixel
``l = x*(y - [x>=0]) - log(1 + exp(x - 2*x*[x>=0]))`` (minus the sigmoid
cross-entropy, written as the original writes it), labels ``y = label > 0.5``,
``pos = sum(-y*l*mask)``, ``neg = sum(-(1-y)*l*mask)``, loss
``pos_weight*pos + neg_weight*neg``, summed over every pixel and slice of
the batch, not averaged. Computed in float32 whatever the logits' dtype.

``normalize=True`` (not in the original) divides each output's loss by the
number of pixels counted (the sum of the loss mask where one is given), which
keeps the loss scale independent of image and batch size for faster recipes
with ordinary learning rates. With it the original learning rates (1e-8) no
longer apply.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import tensorflow as tf

from liverseg.errors import ConfigError
from liverseg.models.config import OUTPUT_NAMES

# (pos_weight, neg_weight) of the original liver and tumour nets.
STAGE_CLASS_WEIGHTS = {"liver": (0.931, 0.069), "tumor": (0.8982, 0.1018)}


class Supervision(str, enum.Enum):
    """Deep supervision: weight of the four side outputs' losses next to the main one."""

    STRONG = "strong"  # main + dsn_2 + dsn_3 + dsn_4 + dsn_5
    WEAK = "weak"  # main + 0.5 * (sum of dsn)
    NONE = "none"  # main only

    @property
    def side_weight(self) -> float:
        return {"strong": 1.0, "weak": 0.5, "none": 0.0}[self.value]

    @classmethod
    def parse(cls, value) -> Supervision:
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(
                f"supervision must be one of {[s.value for s in cls]}, got {value!r}"
            ) from None


def class_balanced_sigmoid_ce(
    labels, logits, pos_weight, neg_weight, loss_mask=None, *, normalize: bool = False
) -> tf.Tensor:
    """Summed class-balanced sigmoid cross-entropy of the original (float32 scalar).

    ``labels`` are binarised at 0.5; ``loss_mask`` (broadcastable to
    ``logits``) multiplies each pixel term first (the tumour net passes the
    liver probability). ``normalize`` divides by the (masked) pixel count.
    """
    x = tf.cast(logits, tf.float32)
    y = tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.float32)
    x_nonneg = tf.cast(x >= 0.0, tf.float32)
    log_likelihood = x * (y - x_nonneg) - tf.math.log(1.0 + tf.exp(x - 2.0 * x * x_nonneg))
    pos_terms = -y * log_likelihood
    neg_terms = -(1.0 - y) * log_likelihood
    if loss_mask is not None:
        mask = tf.cast(loss_mask, tf.float32)
        pos_terms = pos_terms * mask
        neg_terms = neg_terms * mask
    loss = pos_weight * tf.reduce_sum(pos_terms) + neg_weight * tf.reduce_sum(neg_terms)
    if normalize:
        if loss_mask is None:
            count = tf.cast(tf.size(x), tf.float32)
        else:
            count = tf.reduce_sum(tf.broadcast_to(mask, tf.shape(x)))
        loss = loss / tf.maximum(count, 1.0)
    return loss


def soft_dice_terms(
    labels, logits, loss_mask=None, replica_context=None, smooth: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft Dice loss ``1 - (2*I + s) / (P + Y + s)`` over the whole batch, with
    ``I = sum(p*y*m)``, ``P = sum(p*m)``, ``Y = sum(y*m)``, ``p = sigmoid(logits)``.

    Returns ``(value, surrogate)``. Under ``tf.distribute`` the sums are taken
    over the global batch (all-reduced across replicas without gradient);
    ``surrogate`` is the local linearisation ``-2/(S+s)*I_local +
    (2I+s)/(S+s)^2 * P_local`` whose gradients, summed over replicas, are
    those of the global loss (on one device they equal the loss's own).
    """
    p = tf.sigmoid(tf.cast(logits, tf.float32))
    y = tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.float32)
    if loss_mask is not None:
        m = tf.cast(loss_mask, tf.float32)
        p_m, y = p * m, y * m
    else:
        p_m = p
    inter = tf.reduce_sum(p_m * y)
    pred = tf.reduce_sum(p_m)
    local = tf.stack([inter, pred, tf.reduce_sum(y)])
    total = tf.stop_gradient(local)
    if replica_context is not None:
        total = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, total)
    i_g, s_g = total[0], total[1] + total[2] + smooth
    value = 1.0 - (2.0 * i_g + smooth) / s_g
    surrogate = -2.0 / s_g * inter + (2.0 * i_g + smooth) / (s_g * s_g) * pred
    return value, surrogate


def deep_supervision_loss(
    labels,
    outputs: Mapping[str, tf.Tensor],
    supervision,
    pos_weight,
    neg_weight,
    loss_mask=None,
    *,
    normalize: bool = False,
    normaliser=None,
    dice_weight: float = 0.0,
    replica_context=None,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The training loss: ``fuse`` + side weight x (``dsn_2`` + ... + ``dsn_5``).

    ``supervision``: a mode ("strong", "weak", "none") or the side weight
    itself (a float or a scalar tensor, so one traced step serves every
    phase).
    Each output's term is the class-balanced cross-entropy, divided by
    ``normaliser`` when given (the masked pixel count of the global batch)
    or by its own count with ``normalize``, plus ``dice_weight`` x the soft
    Dice over the batch (``soft_dice_terms``; under ``tf.distribute`` pass
    the ``replica_context``).

    Returns ``(total, per_output)``: ``total`` is what to differentiate (with
    the Dice term's linearisation under a replica context); ``per_output``
    holds every output's loss value (for logging; under a replica context
    each replica reports its share of the global Dice, so the values sum
    over replicas), also those that ``supervision`` leaves out of the total.
    """
    side_weight = (
        supervision
        if isinstance(supervision, (float, tf.Tensor))
        else Supervision.parse(supervision).side_weight
    )
    missing = [name for name in OUTPUT_NAMES if name not in outputs]
    if missing:
        raise ConfigError(f"model outputs lack {missing} (have {sorted(outputs)})")
    per_output, for_grad = {}, {}
    for name in OUTPUT_NAMES:
        ce = class_balanced_sigmoid_ce(
            labels,
            outputs[name],
            pos_weight,
            neg_weight,
            loss_mask,
            normalize=normalize and normaliser is None,
        )
        if normaliser is not None:
            ce = ce / normaliser
        per_output[name] = for_grad[name] = ce
        if dice_weight:
            value, surrogate = soft_dice_terms(labels, outputs[name], loss_mask, replica_context)
            share = (
                1.0
                if replica_context is None
                else tf.cast(replica_context.num_replicas_in_sync, tf.float32)
            )
            per_output[name] = ce + dice_weight * value / share
            for_grad[name] = ce + dice_weight * surrogate
    total = for_grad["fuse"] + side_weight * tf.add_n([for_grad[n] for n in OUTPUT_NAMES[1:]])
    return total, per_output
