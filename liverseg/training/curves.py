"""Training curves (loss and Dice against step) as a PNG, from metrics.csv."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

from liverseg.utils.atomic import atomic_path


def read_metrics(csv_path: str | os.PathLike) -> dict[str, list]:
    """Columns of a metrics.csv; later rows for a repeated step win (resumed runs)."""
    rows: dict[int, dict] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["step"])] = row
    steps = sorted(rows)
    out: dict[str, list] = {"step": steps}
    for key in ("loss_total", "loss_fuse", "dice", "val_dice"):
        out[key] = [
            float(rows[s][key]) if rows[s].get(key) not in (None, "") else None for s in steps
        ]
    return out


def plot_training_curves(
    csv_paths: str | os.PathLike | Mapping[str, str | os.PathLike], output: str | os.PathLike
) -> Path:
    """Writes loss (log scale) and Dice curves of one run or of named runs side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = csv_paths if isinstance(csv_paths, Mapping) else {"": csv_paths}
    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 3.2 * len(runs)), squeeze=False)
    for (name, path), (ax_loss, ax_dice) in zip(runs.items(), axes):
        m = read_metrics(path)
        ax_loss.plot(m["step"], m["loss_total"], label="total")
        ax_loss.plot(m["step"], m["loss_fuse"], label="main output")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("update")
        ax_loss.set_title(f"{name} loss".strip())
        ax_loss.legend()
        ax_dice.plot(m["step"], m["dice"], label="train (batch)", alpha=0.6)
        val = [(s, v) for s, v in zip(m["step"], m["val_dice"]) if v is not None]
        if val:
            ax_dice.plot(*zip(*val), "o-", label="validation")
        ax_dice.set_ylim(0, 1)
        ax_dice.set_xlabel("update")
        ax_dice.set_title(f"{name} Dice".strip())
        ax_dice.legend(loc="lower right")
    fig.tight_layout()
    out = Path(output)
    with atomic_path(out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out
