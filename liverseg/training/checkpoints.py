"""Training checkpoints: atomic directories, resume, fallback on corruption.

A checkpoint is ``<model_dir>/ckpt-<step:08d>/`` holding the model weights
(``model.weights.h5``, Keras' HDF5 weights: no pickle), the optimiser's slot
variables (``optimizer.npz``, loaded with ``allow_pickle=False``) and
``state.json``. It is written under a temporary name and renamed, so a
killed run never leaves a half-written checkpoint under a final name; if the
newest one is corrupt anyway (disk trouble), restoring falls back to the one
before. ``<model_dir>/train_state.json`` mirrors the newest state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from liverseg.errors import OutputError
from liverseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d{8})$")
TRAIN_STATE = "train_state.json"


def list_checkpoints(model_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint directories, oldest first."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(
    model_dir: str | os.PathLike, model, optimizer, state: dict, keep: int = 3
) -> Path:
    """Writes ``ckpt-<step>`` atomically, updates ``train_state.json``, prunes old ones."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    final = d / f"ckpt-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".ckpt-{step:08d}.", suffix=".tmp", dir=d))
    try:
        model.save_weights(str(tmp / "model.weights.h5"))
        np.savez(tmp / "optimizer.npz", **optimizer.state())
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as exc:  # a full disk or a read-only directory: the last checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(
            final,
            f"cannot write the checkpoint ({exc.strerror or exc}); nothing written, "
            "the previous checkpoint is kept",
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(
        d / TRAIN_STATE,
        json.dumps({**state, "checkpoint": final.name}, indent=2) + "\n",
        overwrite=True,
    )
    for old in list_checkpoints(d)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_latest(model_dir: str | os.PathLike, model, optimizer) -> dict | None:
    """Restores the newest readable checkpoint; returns its state, or None if none exist."""
    for ckpt in reversed(list_checkpoints(model_dir)):
        try:
            state = json.loads((ckpt / "state.json").read_text())
            with np.load(ckpt / "optimizer.npz", allow_pickle=False) as npz:
                opt_state = {k: npz[k] for k in npz.files}
            model.load_weights(str(ckpt / "model.weights.h5"))
            optimizer.load_state(opt_state)
        except Exception as exc:
            log.warning("checkpoint %s is unreadable (%s); trying the previous one", ckpt, exc)
            continue
        log.info("resumed from %s (step %d)", ckpt, state["step"])
        return state
    return None
