"""The layering docs/ARCHITECTURE.md draws, enforced by import-linter (pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or pytest.fail(
        "lint-imports not found: install requirements-dev.txt"
    )
    result = subprocess.run(
        [lint, "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_every_tool_is_an_installable_command():
    """pyproject's [project.scripts] name every tool, each pointing at a run()."""
    import ast

    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    tools = sorted(p.stem for p in (ROOT / "tools").glob("*.py"))
    assert sorted(target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()) == tools
    for name, target in scripts.items():
        module, function = target.split(":")
        assert name == "liverseg-" + module.rsplit(".", 1)[1].replace("_", "-")
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
