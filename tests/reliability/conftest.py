"""Shared material of the reliability tests: tiny saved networks and a tool runner."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class ToolResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def liverseg_errors(self) -> list[str]:
        """stderr lines written by liverseg for errors (TensorFlow's own start-up lines excluded)."""
        return [line for line in self.stderr.splitlines() if line.startswith(("ERROR ", "error: "))]

    def error_line_for(self, path: str, note: str = "") -> str:
        """The one liverseg error line naming ``path`` (asserts there is exactly one)."""
        lines = [line for line in self.liverseg_errors() if f"{path}:" in line]
        assert len(lines) == 1, (note, self.stderr[-3000:])
        return lines[0]

    def last_error(self) -> str:
        errors = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        assert errors, self.stderr[-3000:]
        return errors[-1]


def _env() -> dict:
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )


def run_python(*args, timeout: int = 300, env: dict | None = None) -> ToolResult:
    """Runs ``python *args`` from the repository root; never raises on failure."""
    done = subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        env={**_env(), **(env or {})},
        cwd=str(ROOT),
        timeout=timeout,
    )
    return ToolResult(done.returncode, done.stdout, done.stderr)


def run_tool(tool: str, *args, timeout: int = 300) -> ToolResult:
    """Runs ``python tools/<tool>.py *args`` as a user would."""
    return run_python(TOOLS / f"{tool}.py", *args, timeout=timeout)


def run_killed(
    mode: str, marker: str, tool: str, *args, timeout: int = 300, signal: str = "SIGKILL"
) -> ToolResult:
    """Runs a tool under ``kill_driver.py``, which signals it while it writes ``marker``."""
    return run_python(
        HERE / "kill_driver.py",
        mode,
        marker,
        TOOLS / f"{tool}.py",
        *args,
        timeout=timeout,
        env={"KILL_SIGNAL": signal},
    )


def assert_one_line_error(result: ToolResult, *fragments: str, code: int = 1) -> str:
    """Exit ``code``, no traceback, exactly one ``error:`` line holding every fragment."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.output, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "internal error" not in errors[0], errors[0]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Untrained liver and tumour networks saved as liverseg model directories."""
    from liverseg.models import build_ds_sffnet, save_model

    root = tmp_path_factory.mktemp("reliability_models")
    return (
        save_model(build_ds_sffnet("liver", seed=0), root / "liver"),
        save_model(build_ds_sffnet("tumor", seed=0), root / "tumor"),
    )
