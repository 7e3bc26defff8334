"""The GPU check: every figure a lent accelerator should give, in one run, as one JSON.

1. forward passes of the network at 512x512 (``--size``): float32, mixed
   bfloat16 and each with XLA, across batch sizes (images/s, GFLOP/s);
2. the cascade end to end (``infer.py``'s Segmenter with untrained networks
   and the original post-processing) on a 512x512x500 phantom, per stage;
3. training updates/s of both recipes (the real TrainStep fed by the real
   tf.data pipeline).

Each part stops at the time budget (``--budget_s``; what is left is marked
skipped), so the whole run fits a short device lease. ``--tiny`` runs it at
toy sizes on any machine (the tests do, so the script cannot rot).

Usage:
  bash benchmarks/gpu_check.sh                         # writes $OUT/gpu_check.json
  python benchmarks/gpu_check.py --output=/tmp/gpu_check.json --tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FULL = {
    "size": 512,
    "batches": (1, 4, 8, 16, 32),
    "volume": (512, 512, 500),
    "train_size": 512,
    "train_steps": 10,
    "repeats": 5,
}
TINY = {
    "size": 32,
    "batches": (1,),
    "volume": (48, 48, 8),
    "train_size": 32,
    "train_steps": 1,
    "repeats": 1,
}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def _device() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    info = {"gpus": [g.name for g in gpus]}
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        info["gpu_name"] = details.get("device_name")
        info["compute_capability"] = details.get("compute_capability")
    return info


def forward(cfg: dict, budget: Budget) -> list[dict]:
    import keras
    from bench_forward import forward_gflop

    from liverseg.inference.predictor import bfloat16_copy
    from liverseg.models import build_ds_sffnet

    base = build_ds_sffnet("tumor", seed=0)
    gflop = forward_gflop(base, cfg["size"], cfg["size"])
    rows = []
    for dtype in ("float32", "bfloat16"):
        model = base if dtype == "float32" else bfloat16_copy(base)
        for xla in (False, True):
            fn = tf.function(
                lambda x, m=model: tf.cast(m(x, training=False)["fuse"], tf.float32),
                jit_compile=xla,
                autograph=False,
            )
            for batch in cfg["batches"]:
                row = {"dtype": dtype, "xla": xla, "batch": batch, "size": cfg["size"]}
                rows.append(row)
                if budget.left() < 0:
                    row["skipped"] = "time budget"
                    continue
                x = tf.random.uniform((batch, cfg["size"], cfg["size"], 3), 0, 255)
                try:
                    fn(x).numpy()  # trace / compile
                    best = float("inf")
                    for _ in range(cfg["repeats"]):
                        start = time.perf_counter()
                        fn(x).numpy()
                        best = min(best, time.perf_counter() - start)
                except (tf.errors.ResourceExhaustedError, tf.errors.InternalError) as exc:
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    continue
                row.update(
                    seconds=round(best, 5),
                    images_per_s=round(batch / best, 2),
                    gflop_per_s=round(batch * gflop / best, 1),
                )
                print(json.dumps(row), flush=True)
    keras.backend.clear_session()
    return rows


def cascade(cfg: dict, budget: Budget) -> dict:
    from liverseg.inference import Segmenter, SegmentOptions
    from liverseg.models import build_ds_sffnet

    if budget.left() < 0:
        return {"skipped": "time budget"}
    h, w, d = cfg["volume"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    body = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.48 * w)) ** 2 < 1
    liver = ((yy - 0.45 * h) / (0.2 * h)) ** 2 + ((xx - 0.35 * w) / (0.22 * w)) ** 2 < 1
    hu = np.where(body, 40, -1000).astype(np.int16)[..., None].repeat(d, axis=2)
    hu[liver] = 110
    hu = (hu + rng.normal(0, 12, hu.shape)).astype(np.int16)
    segmenter = Segmenter(
        build_ds_sffnet("liver", seed=0), build_ds_sffnet("tumor", seed=1), SegmentOptions()
    )
    segmenter.segment(hu[..., :8])  # warm-up
    start = time.perf_counter()
    result = segmenter.segment(hu)
    total = time.perf_counter() - start
    out = {
        "shape": [h, w, d],
        "seconds": round(total, 2),
        "stages_s": {k: round(v, 3) for k, v in result.timings.items()},
        "roi_slices": len(result.roi_slices),
    }
    print(json.dumps({"cascade": out}), flush=True)
    return out


def training(cfg: dict, budget: Budget) -> list[dict]:
    from bench_train import bench

    rows = []
    for recipe in ("fast", "original"):
        if budget.left() < 0:
            rows.append({"recipe": recipe, "skipped": "time budget"})
            continue
        row = bench(cfg["train_size"], recipe, cfg["train_steps"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="the JSON of figures")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (any machine, tests)")
    parser.add_argument("--budget_s", type=float, default=420.0, help="stop starting new parts")
    args = parser.parse_args()
    cfg = TINY if args.tiny else FULL
    budget = Budget(args.budget_s)
    start = time.perf_counter()
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "tf": tf.__version__,
        "device": _device(),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
    }
    figures["forward"] = forward(cfg, Budget(min(budget.left(), 0.45 * args.budget_s)))
    figures["cascade"] = cascade(cfg, budget)
    figures["training"] = training(cfg, budget)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(figures, f, indent=2)
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({figures['seconds']} s)")


if __name__ == "__main__":
    main()
