"""float32 against bfloat16 inference with trained models: speed and phantom Dice.

Usage (after `python tools/demo.py`, which leaves trained models and held-out phantoms):
  python benchmarks/bench_precision.py --liver_model=demo_work/models/liver \
      --tumor_model=demo_work/models/tumor --data_dir=demo_work/phantoms/test

Runs the whole cascade on every labelled volume twice (float32, then mixed
bfloat16) and prints per-precision network time and per-case Dice of liver and
tumour, and the largest Dice difference between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liver_model", required=True)
    parser.add_argument("--tumor_model", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()

    from liverseg.data import lits, nifti
    from liverseg.inference import Segmenter, SegmentOptions
    from liverseg.models import load_model

    liver, tumor = load_model(args.liver_model), load_model(args.tumor_model)
    cases = lits.discover_cases(args.data_dir)
    results = {}
    for name, mixed in (("float32", False), ("bfloat16", True)):
        seg = Segmenter(
            liver, tumor, SegmentOptions(batch_size=args.batch_size, mixed_precision=mixed)
        )
        rows, net_time = [], 0.0
        for case in cases:
            volume = nifti.load_ct(case.volume, dtype=None)
            ref = nifti.load_labels(case.segmentation).data
            t = time.perf_counter()
            out = seg.segment(volume)
            net_time += out.timings["liver_net"] + out.timings["tumor_net"]
            rows.append(
                {
                    "case": case.case_id,
                    "liver_dice": round(_dice(out.labels >= 1, ref >= 1), 5),
                    "tumor_dice": round(_dice(out.labels == 2, ref == 2), 5),
                    "seconds": round(time.perf_counter() - t, 2),
                }
            )
        results[name] = {"network_seconds": round(net_time, 2), "cases": rows}
        print(name, json.dumps(results[name]), flush=True)
    diffs = [
        abs(a[k] - b[k])
        for a, b in zip(results["float32"]["cases"], results["bfloat16"]["cases"])
        for k in ("liver_dice", "tumor_dice")
    ]
    speedup = results["float32"]["network_seconds"] / results["bfloat16"]["network_seconds"]
    print(
        json.dumps(
            {
                "max_abs_dice_difference": round(max(diffs), 5),
                "network_speedup_bf16": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
