"""Installs the project's requirements when they are missing (stdlib only).

Used by ``tools/demo.py`` so that one command works on a fresh machine.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")


def missing_requirements(requirements: str | Path) -> list[str]:
    """Distributions named in ``requirements`` that are not installed."""
    missing = []
    for line in Path(requirements).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = _REQ.match(line)
        if not m:
            continue
        try:
            importlib.metadata.version(m.group(1))
        except importlib.metadata.PackageNotFoundError:
            missing.append(m.group(1))
    return missing


def ensure_requirements(requirements: str | Path) -> None:
    """Runs ``pip install -r requirements`` if any requirement is missing."""
    missing = missing_requirements(requirements)
    if not missing:
        return
    print(f"installing missing requirements ({', '.join(missing)}) ...", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)])
