"""A model directory's ``plans.json``: the grid the network was trained on.

Training with geometry normalisation records the orientation and in-plane
pixel spacing of its (reoriented, resampled) training data, as nnU-Net's
plans record the target spacing; inference brings every input to that grid
and the result back (``liverseg.data.geometry``). A model without the file
(the original recipe, a converted checkpoint) runs on volumes as stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liverseg.data.geometry import Geometry
from liverseg.errors import ConfigError
from liverseg.utils.atomic import atomic_write_text

PLANS_FILE = "plans.json"
FORMAT_VERSION = 1


def save_plans(
    directory: str | os.PathLike, geometry: Geometry, *, details: Mapping[str, Any] | None = None
) -> Path:
    """Writes ``directory/plans.json`` atomically (replacing an earlier one)."""
    document = {
        "format_version": FORMAT_VERSION,
        "geometry": geometry.to_dict(),
        **({"details": dict(details)} if details else {}),
    }
    path = Path(directory) / PLANS_FILE
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n", overwrite=True)
    return path


def load_geometry(directory: str | os.PathLike) -> Geometry | None:
    """The training geometry stored in a model directory, or None without one."""
    path = Path(directory) / PLANS_FILE
    if not Path(directory).is_dir() or not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
        if not isinstance(document, dict) or "geometry" not in document:
            raise ConfigError("no 'geometry' object")
        return Geometry.from_dict(document["geometry"])
    except (ValueError, ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: not valid plans ({exc})") from None
