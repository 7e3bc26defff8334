"""Robustness ablation: what wide phantoms, augmentation, geometry and tuned
post-processing each contribute, on the held-out set of the training generator
and on the external phantom family (never trained or tuned on).

Each training configuration is a full demo run (``liverseg.demo``, the
default profile unless ``--quick``) in its own work directory; the inference
variants reuse the default configuration's models. Results go to
``WORK/ablation.json`` and a Markdown table on stdout (docs/BENCHMARKS.md).

Usage:
  python benchmarks/bench_robustness.py --work_dir=/tmp/ablation
  python benchmarks/bench_robustness.py --work_dir=/tmp/ablation --configs=default,no_augment
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from liverseg import demo

#: name -> (what it changes, DemoSettings overrides)
CONFIGS = {
    "default": ("wide phantoms, augmentation, one grid (the demo)", {}),
    "no_augment": ("wide phantoms, no augmentation", {"augment": False}),
    "narrow": ("narrow phantoms (one phase, one storage), augmentation", {"style": "narrow"}),
    "previous": (
        "narrow phantoms, no augmentation, volumes as stored (the previous demo)",
        {"style": "narrow", "augment": False, "geometry": "native"},
    ),
}

#: inference variants on the default models: name -> (what, resolve_options arguments)
INFERENCE = {
    "stored": ("stored post-processing, model grid (infer.py defaults)", {}),
    "original_postprocess": ("the original cascade, model grid", {"postprocess": "original"}),
    "native_grid": ("stored post-processing, volumes as stored", {"geometry": "native"}),
    "previous_demo_postprocess": (
        "the previous demo's fixed choice (mean, 2:2 shift, no CRF, opening on the tumour)",
        {
            "overrides": {
                "slice_fusion": "mean",
                "tta_shifts": ((2, 2),),
                "crf_targets": (),
                "opening_targets": ("tumor",),
            }
        },
    ),
}


def _scores(report: dict) -> dict:
    return {
        "liver": report["liver"].get("dice_per_case"),
        "tumor": report["tumor"].get("dice_per_case"),
    }


def _train_config(work: Path, name: str, base: demo.DemoSettings) -> dict:
    settings = dataclasses.replace(base, **CONFIGS[name][1])
    t = time.perf_counter()
    report = demo.run_demo(str(work / name), settings=settings)
    return {
        "what": CONFIGS[name][0],
        "seconds": round(time.perf_counter() - t),
        "held_out": _scores(report),
        "external": _scores(report["external"]),
    }


def _inference_variant(work: Path, name: str) -> dict:
    from liverseg.evaluation.report import evaluate_directories
    from liverseg.inference import RunOptions, resolve_options, run

    models = work / "default" / "models"
    liver, tumor = str(models / "liver"), str(models / "tumor")
    resolved = resolve_options(liver, tumor, **INFERENCE[name][1])
    out = {"what": INFERENCE[name][0]}
    for key, test in (("held_out", "test"), ("external", "external")):
        pred = work / "inference" / name / key
        run(
            work / "default" / "phantoms" / test,
            pred,
            options=RunOptions(skip_existing=True),
            liver_model=liver,
            tumor_model=tumor,
            segment_options=resolved.segment_options,
            geometry=resolved.geometry,
        )
        out[key] = _scores(evaluate_directories(pred, work / "default" / "phantoms" / test))
    return out


def _table(results: dict) -> str:
    rows = [
        "| configuration | held-out liver | held-out tumour | external liver | external tumour |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [r[k][s] for k in ("held_out", "external") for s in ("liver", "tumor")]
        rows.append(
            f"| {name}: {r['what']} | "
            + " | ".join("-" if c is None else f"{c:.3f}" for c in cells)
            + " |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--inference", default=",".join(INFERENCE))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    base = demo.QUICK if args.quick else demo.DEFAULT
    path = work / "ablation.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name in filter(None, args.configs.split(",")):
        results[f"train:{name}"] = _train_config(work, name, base)
        path.write_text(json.dumps(results, indent=2) + "\n")
    for name in filter(None, args.inference.split(",")):
        results[f"infer:{name}"] = _inference_variant(work, name)
        path.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))


if __name__ == "__main__":
    main()
