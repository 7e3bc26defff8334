"""case_metrics against an independent brute-force implementation of the
same definitions on random blobs (surfaces by explicit neighbour tests,
distances by k-d tree, lesions by skimage labelling and all-pairs IoU)."""

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import label as sk_label

from liverseg.evaluation.metrics import case_metrics

NEIGHBOURS_18 = [o for o in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, o)) <= 2]


def brute_surface(mask):
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    n0, n1, n2 = mask.shape
    for dx, dy, dz in NEIGHBOURS_18:
        neighbour = padded[1 + dx : 1 + dx + n0, 1 + dy : 1 + dy + n1, 1 + dz : 1 + dz + n2]
        out |= mask & ~neighbour
    return out


def brute_scores(pred, ref, spacing):
    inter, p, r = (pred & ref).sum(), pred.sum(), ref.sum()
    scores = {"dice": 2 * inter / (p + r), "voe": 1 - inter / (p + r - inter), "rvd": (p - r) / r}
    if p == 0 or r == 0:
        scores.update(assd=9001.0, msd=9001.0, rmsd=9001.0)
        return scores
    sp = np.argwhere(brute_surface(pred)) * np.asarray(spacing)
    sr = np.argwhere(brute_surface(ref)) * np.asarray(spacing)
    d = np.concatenate([cKDTree(sr).query(sp)[0], cKDTree(sp).query(sr)[0]])
    scores.update(assd=d.mean(), msd=d.max(), rmsd=np.sqrt((d**2).mean()))
    return scores


def brute_lesions(pred, ref, spacing):
    rl, nr = sk_label(ref, connectivity=1, return_num=True)
    pl, npred = sk_label(pred, connectivity=1, return_num=True)
    detected = []
    for i in range(1, nr + 1):
        for j in range(1, npred + 1):
            a, b = rl == i, pl == j
            iou = (a & b).sum() / (a | b).sum()
            if iou > 0.5:
                detected.append(brute_scores(b, a, spacing))
    return nr, npred, detected


def random_labels(rng, shape, liver_level, tumour_level, field=None):
    if field is None:
        field = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.0)
    liver = field + 0.02 * noise > liver_level
    tumour = liver & (ndimage.gaussian_filter(field, 1.0) + 0.03 * noise > tumour_level)
    return liver.astype(np.uint8) + tumour.astype(np.uint8), field


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = (36, 30, 20)
    spacing = (0.78, 0.65, 2.5)
    ref, field = random_labels(rng, shape, -0.02, 0.12)
    pred, _ = random_labels(rng, shape, 0.0, 0.1, field=field + 0.03 * rng.normal(size=shape))
    assert (ref >= 1).any() and (ref == 2).any() and (pred == 2).any()
    # blobs reach the array border, where the crop must not change anything
    assert (ref[0] >= 1).any() or (ref[:, :, -1] >= 1).any()

    m = case_metrics(pred, ref, spacing)
    expected = brute_scores(pred >= 1, ref >= 1, spacing)
    for key in ("dice", "voe", "rvd"):
        assert m["liver"][key] == pytest.approx(expected[key], abs=1e-6)
    for key in ("assd", "msd", "rmsd"):
        assert m["liver"][key] == pytest.approx(expected[key], abs=1e-3)

    n_ref, n_pred, lesions = brute_lesions(pred == 2, ref == 2, spacing)
    assert m["tumor"]["num_reference_lesions"] == n_ref
    assert m["tumor"]["num_predicted_lesions"] == n_pred
    assert m["tumor"]["num_detected"] == len(lesions) > 0
    t = (pred == 2) & (ref == 2)
    assert m["tumor"]["dice"] == pytest.approx(
        2 * t.sum() / ((pred == 2).sum() + (ref == 2).sum()), abs=1e-6
    )
    ours = sorted(m["lesions"], key=lambda s: s["assd"])
    theirs = sorted(lesions, key=lambda s: s["assd"])
    for a, b in zip(ours, theirs):
        for key in ("dice", "voe", "rvd"):
            assert a[key] == pytest.approx(b[key], abs=1e-6)
        for key in ("assd", "msd", "rmsd"):
            assert a[key] == pytest.approx(b[key], abs=1e-3)
