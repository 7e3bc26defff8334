"""benchmarks/gpu_check.sh runs (toy sizes, CPU) and writes every figure it promises."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_at_toy_sizes(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny"],
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    forward = figures["forward"]
    assert {(r["dtype"], r["xla"]) for r in forward} == {
        (d, x) for d in ("float32", "bfloat16") for x in (False, True)
    }
    assert all(r["images_per_s"] > 0 for r in forward)
    assert figures["cascade"]["shape"] == [48, 48, 8]
    assert set(figures["cascade"]["stages_s"]) >= {"liver_net", "tumor_net", "total"}
    assert [r["recipe"] for r in figures["training"]] == ["fast", "original"]
    assert all(r["updates_per_s"] > 0 for r in figures["training"])
