"""One update on two replicas equals the single-device update on the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(mode, recipe, out, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.distributed_update", mode, recipe, str(out)],
        cwd=ROOT,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _assert_same(a, b):
    weights = sorted(k for k in a if k.startswith("w"))
    assert weights and weights == sorted(k for k in b if k.startswith("w"))
    for k in weights:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)
    assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)


@pytest.mark.parametrize("recipe", ["original", "fast", "fast+dice"])
def test_mirrored_two_cpu_replicas_equal_single_device(tmp_path, recipe):
    single, mirrored = tmp_path / "single.npz", tmp_path / "mirrored.npz"
    p1, p2 = _run("single", recipe, single), _run("mirrored", recipe, mirrored)
    _wait(p1)
    _wait(p2)
    a, b = _load(single), _load(mirrored)
    assert int(a["replicas"]) == 1 and int(b["replicas"]) == 2
    _assert_same(a, b)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_processes_equal_single_device(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(_run("worker", "fast", tmp_path / f"worker{i}.npz", _env(TF_CONFIG=tf_config)))
    single = tmp_path / "single.npz"
    procs.append(_run("single", "fast", single))
    for p in procs:
        _wait(p)
    ref = _load(single)
    for i in range(2):
        w = _load(tmp_path / f"worker{i}.npz")
        assert int(w["replicas"]) == 2
        _assert_same(ref, w)
