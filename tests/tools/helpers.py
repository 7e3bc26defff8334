"""Running a tool as a user does: ``python tools/<name>.py ...`` in a subprocess."""

import functools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_tool(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs ``tools/<name>.py *args`` from anywhere with the checkout importable; never raises."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def tool(name: str):
    """``run_tool`` bound to one tool."""
    return functools.partial(run_tool, name)
