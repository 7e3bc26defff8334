"""End-to-end inference on a LiTS-size phantom: wall time by stage, peak memory.

Writes a 512x512xZ phantom (``liverseg.phantoms.training``) as NIfTI, then, in a
fresh process holding only what ``tools/infer.py`` holds, builds untrained
liver and tumour networks (fixed seeds) and runs the cascade stage by stage
as the tool does (same options, ``keep_probabilities`` off): load (int16),
liver net over every slice, ROI, tumour net on the ROI crops, masking, CRF,
opening, label map, write. An untrained liver net segments nothing
sensible, so after the liver net has run (and been timed) its output array
is overwritten in place by an "oracle" liver probability made from the
phantom's true liver (read slice by slice from disk; this step is neither
timed nor counted in the peak): ROI, tumour net, CRF and opening then see a
realistic liver region. The untrained tumour net answers >= 0.5 almost
everywhere inside the liver, so the tumour CRF box is about the liver box:
an upper bound of its cost.

Peak memory per stage is the resident-memory high-water mark (VmHWM) after
resetting it at the stage start (``/proc/self/clear_refs``); the run's peak
is the largest of the tool's stages (the reset also resets ``getrusage``'s
``ru_maxrss``), compared with issue 8's bound of 2 x the int16 volume +
1.5 GB (decimal units). Afterwards (not in the peak) the liver CRF is also
timed on the whole in-plane extent of a central slab of
``--whole_crf_slices`` slices (0 skips it; pydensecrf needs about 200 bytes
per voxel and its cost is linear in the voxel count) and scaled to the
volume; ``-1`` runs it on the whole volume. ``--precision`` compares float32,
XLA and bfloat16 on a few 256x256 stacks (speed and probability change).

``--batch_sweep 1,2,4,8`` instead measures the liver net's forward
throughput (slices/s) and the process's peak resident memory per inference
batch size, each in a fresh process, ``--sweep_rounds`` times in alternating
order (best throughput kept): what ``batch_size="auto"`` is chosen from.

Usage:
  python benchmarks/bench_infer.py [--shape 512,512,300] [--batch_size 0] \
      [--crf_max_voxels N] [--whole_crf_slices 0] [--precision] [--json out.json]
  python benchmarks/bench_infer.py --batch_sweep 1,2,4,8 [--sweep_size 512] \
      [--sweep_stacks 8] [--sweep_rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np
from scipy import ndimage

CRF_BYTES_PER_VOXEL = 210  # measured (docs/BENCHMARKS.md, bench_crf.py)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Stages:
    """Wall time and peak resident memory of named stages."""

    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name, fn, *args, **kwargs):
        _reset_peak()
        before = _status_mb("VmRSS")
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t
        self.rows.append(
            {
                "stage": name,
                "seconds": seconds,
                "rss_before_mb": before,
                "peak_mb": _status_mb("VmHWM"),
                "rss_after_mb": _status_mb("VmRSS"),
            }
        )
        print(f"{name:>16}: {seconds:8.2f} s  peak {self.rows[-1]['peak_mb']:8.0f} MB", flush=True)
        return out


def oracle_liver_probability(
    labels, steepness: float = 8.0, out: np.ndarray | None = None
) -> np.ndarray:
    """A confident-network-like liver probability from the true liver, float32:
    sigmoid of ``steepness`` x the in-plane signed distance (pixels) to its edge,
    saturated (p = 1 or 0 in float32) from about 2 pixels inside / outside.
    ``labels`` is [z, x, y] (slice-major, e.g. a memory-mapped file); the result,
    [x, y, z], goes into ``out`` when given."""
    from scipy import special

    z, x, y = labels.shape
    prob = np.empty((x, y, z), np.float32) if out is None else out
    for k in range(z):
        mask = np.asarray(labels[k]) >= 1
        if not mask.any():
            prob[:, :, k] = 0.0
            continue
        signed = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
        prob[:, :, k] = special.expit(steepness * (signed - 0.5))
    return prob


def precision_comparison(liver_model, stacks: int = 8, size: int = 256) -> dict:
    from liverseg.inference.predictor import PredictorOptions, StackPredictor

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (stacks, size, size, 3)).astype(np.float32)
    x = ndimage.gaussian_filter(x, (0, 2, 2, 0))
    out, ref = {}, None
    for name, opts in (
        ("float32", PredictorOptions(stacks)),
        ("float32_xla", PredictorOptions(stacks, jit_compile=True)),
        ("bfloat16", PredictorOptions(stacks, mixed_precision=True)),
    ):
        predictor = StackPredictor(liver_model, opts)
        t = time.perf_counter()
        first = predictor.predict(x)
        warm_up = time.perf_counter() - t
        t = time.perf_counter()
        prob = predictor.predict(x)
        seconds = time.perf_counter() - t
        ref = prob if ref is None else ref
        out[name] = {
            "first_call_s": warm_up,
            "seconds_per_stack": seconds / stacks,
            "max_abs_prob_diff": float(np.max(np.abs(prob - ref))),
            "threshold_disagreement": float(np.mean((prob > 0.5) != (ref > 0.5))),
        }
        del first
        print(name, out[name], flush=True)
    return out


def _sweep_child(batch: int, size: int, stacks: int) -> dict:
    """In a fresh process: liver net forward throughput and peak resident memory of a
    ``StackPredictor`` at one batch size (float32, ``size`` x ``size`` stacks)."""
    from liverseg.inference.predictor import PredictorOptions, StackPredictor
    from liverseg.models import build_ds_sffnet

    predictor = StackPredictor(build_ds_sffnet("liver", seed=1), PredictorOptions(batch))
    rss_model = _status_mb("VmRSS")
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(
        rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32), (0, 2, 2, 0)
    )
    predictor.predict_batch(x)  # trace and oneDNN primitives
    calls = max(stacks // batch, 1)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        predictor.predict_batch(x)
        times.append(time.perf_counter() - t)
    return {
        "batch": batch,
        "size": size,
        "stacks": calls * batch,
        "slices_per_s": calls * batch / sum(times),
        "best_slices_per_s": batch / min(times),
        "rss_model_mb": rss_model,
        "peak_mb": _status_mb("VmHWM"),
        "load_average": os.getloadavg()[0],
    }


def batch_sweep(batches, size: int, stacks: int, rounds: int) -> list[dict]:
    """``_sweep_child`` per batch size in fresh processes, in ``rounds`` alternating orders;
    throughput is the best round's (the machine is shared), memory the largest peak."""
    import subprocess

    results: dict[int, list[dict]] = {b: [] for b in batches}
    for r in range(rounds):
        for b in batches if r % 2 == 0 else batches[::-1]:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--_sweep_child",
                    str(b),
                    "--sweep_size",
                    str(size),
                    "--sweep_stacks",
                    str(stacks),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[b].append(row)
            print(
                f"  batch {b}: {row['slices_per_s']:.3f} slices/s, peak {row['peak_mb']:.0f} MB "
                f"(model {row['rss_model_mb']:.0f} MB), load {row['load_average']:.1f}",
                flush=True,
            )
    rows = []
    for runs in results.values():
        best = max(runs, key=lambda row: row["slices_per_s"])
        rows.append(
            {
                **best,
                "rounds": [round(row["slices_per_s"], 4) for row in runs],
                "peak_mb": max(row["peak_mb"] for row in runs),
            }
        )
    top = max(row["slices_per_s"] for row in rows)
    print(
        f"\n| batch | slices/s (best of {rounds}) | of best | peak RSS | activations "
        f"(peak - model) |\n|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['batch']} | {row['slices_per_s']:.3f} | "
            f"{100 * row['slices_per_s'] / top:.0f} % | {row['peak_mb']:.0f} MB | "
            f"{row['peak_mb'] - row['rss_model_mb']:.0f} MB |"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch_sweep",
        default=None,
        help="comma list of batch sizes: liver net throughput and peak memory "
        "per batch size (fresh process each), then exit",
    )
    parser.add_argument("--sweep_size", type=int, default=512)
    parser.add_argument("--sweep_stacks", type=int, default=8)
    parser.add_argument("--sweep_rounds", type=int, default=2)
    parser.add_argument("--_sweep_child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="512,512,300")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=0, help="0: automatic (as infer.py)")
    parser.add_argument(
        "--crf_max_voxels",
        type=int,
        default=None,
        help="SegmentOptions.crf_max_voxels (default: its default; 0: no limit)",
    )
    parser.add_argument("--_e2e_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--whole_crf_slices",
        type=int,
        default=0,
        help="whole-volume CRF on a central slab of N slices, scaled to the "
        "volume (cost is linear in voxels); -1: the whole volume; 0: skip",
    )
    parser.add_argument("--precision", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args._sweep_child is not None:
        print(json.dumps(_sweep_child(args._sweep_child, args.sweep_size, args.sweep_stacks)))
        return
    if args.batch_sweep:
        print(
            f"# {platform.node()}, {os.cpu_count()} logical CPUs, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}"
        )
        rows = batch_sweep(
            [int(b) for b in args.batch_sweep.split(",")],
            args.sweep_size,
            args.sweep_stacks,
            args.sweep_rounds,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        return
    if args._e2e_child:
        e2e_child(args)
        return
    shape = tuple(int(v) for v in args.shape.split(","))
    from liverseg.data import nifti
    from liverseg.phantoms.training import make_phantom

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ph = make_phantom(shape, seed=args.seed, index=0)
        nifti.save_ct(Path(tmp) / "volume-0.nii.gz", ph.hu, ph.affine, compresslevel=1)
        np.save(
            Path(tmp) / "labels_zxy.npy",
            np.ascontiguousarray(ph.labels.transpose(2, 0, 1)),
            allow_pickle=False,
        )
        del ph
        phantom_seconds = time.perf_counter() - t
        print(
            f"phantom {shape} written in {phantom_seconds:.1f} s; running the cascade in a "
            f"fresh process",
            flush=True,
        )
        child = [
            sys.executable,
            __file__,
            "--_e2e_child",
            tmp,
            "--shape",
            args.shape,
            "--batch_size",
            str(args.batch_size),
            "--whole_crf_slices",
            str(args.whole_crf_slices),
        ]
        if args.crf_max_voxels is not None:
            child += ["--crf_max_voxels", str(args.crf_max_voxels)]
        if args.precision:
            child.append("--precision")
        import subprocess

        subprocess.run(child, check=True)
        report = json.loads((Path(tmp) / "report.json").read_text())
    report["phantom_seconds"] = phantom_seconds
    text = json.dumps(report, indent=1, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


def e2e_child(args) -> None:
    """The measured run (fresh process): see the module docstring."""
    from liverseg.data import nifti
    from liverseg.data import preprocess as pp
    from liverseg.inference import Segmenter, SegmentOptions
    from liverseg.models import build_ds_sffnet
    from liverseg.postprocess import crf as crf_lib

    tmp = Path(args._e2e_child)
    shape = tuple(int(v) for v in args.shape.split(","))
    labels_path = tmp / "labels_zxy.npy"
    extra = {} if args.crf_max_voxels is None else {"crf_max_voxels": args.crf_max_voxels}
    options = SegmentOptions(
        batch_size=args.batch_size or "auto", keep_probabilities=False, **extra
    )
    report: dict = {
        "shape": shape,
        "batch_size": options.batch_size,
        "batch_pixels": options.batch_pixels,
        "crf_max_voxels": options.crf_max_voxels,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_start": os.getloadavg(),
        "rss_start_mb": _status_mb("VmRSS"),
    }
    liver_model = build_ds_sffnet("liver", seed=1)
    tumor_model = build_ds_sffnet("tumor", seed=2)
    segmenter = Segmenter(liver_model, tumor_model, options)
    report["rss_after_models_mb"] = _status_mb("VmRSS")
    print(
        f"networks built: resident {report['rss_after_models_mb']:.0f} MB; batch "
        f"{options.predictor_options().batch_size_for(*shape[:2])} at {shape[0]}x{shape[1]}",
        flush=True,
    )

    stages = Stages()
    volume = stages.run("load", nifti.load_ct, tmp / "volume-0.nii.gz", dtype=None)
    stats: dict = {}
    held = [stages.run("liver_net", segmenter.liver_probability, volume.data, stats=stats)]
    report["liver_net_split"] = stats
    labels = np.load(labels_path, mmap_mode="r")
    stages.run("oracle (not timed)", oracle_liver_probability, labels, out=held[0])
    del labels
    result = stages.run(
        "rest_of_cascade", lambda: segmenter.segment(volume, liver_probability=held.pop())
    )
    stages.run("write", nifti.save_labels, tmp / "segmentation-0.nii.gz", result.labels, volume)
    report["load_average_after_cascade"] = os.getloadavg()

    rows = {row["stage"]: row for row in stages.rows}
    t = result.timings
    split = {
        "load": rows["load"]["seconds"],
        "liver_net": rows["liver_net"]["seconds"],
        "roi": t["roi"],
        "tumor_net": t["tumor_net"],
        "crf": t["crf"],
        "opening": t["opening"],
        "threshold": t["liver_net"],
        "labels": t["labels"],
        "write": rows["write"]["seconds"],
    }
    total = sum(split.values())
    network = stats.get("network", 0.0) + result.details.get("tumor_network", 0.0)
    report["stages"] = stages.rows
    report["split_seconds"] = split
    report["total_seconds"] = total
    report["network_seconds"] = network
    report["network_share"] = network / total
    report["wall_over_network"] = total / network
    report["crf_opening_fraction"] = (split["crf"] + split["opening"]) / total
    tool_stages = ("load", "liver_net", "rest_of_cascade", "write")
    # resetting VmHWM also resets ru_maxrss, so the run's peak is the stages' maximum
    report["peak_rss_mb"] = max(rows[k]["peak_mb"] for k in tool_stages)
    report["peak_stage"] = max(tool_stages, key=lambda k: rows[k]["peak_mb"])
    report["int16_volume_mb"] = volume.data.nbytes / 2**20
    limit = 2 * volume.data.nbytes + 1.5e9
    report["target_bytes"] = limit
    report["peak_rss_bytes"] = report["peak_rss_mb"] * 2**20
    report["peak_over_target"] = report["peak_rss_bytes"] / limit
    report["model_weights_mb"] = (
        sum(w.nbytes for w in liver_model.get_weights() + tumor_model.get_weights()) / 2**20
    )
    report["roi_box"] = None if result.roi is None else result.roi.to_list()
    report["roi_slices"] = int(result.roi_slices.size)
    report["details"] = result.details
    truth = np.load(labels_path).transpose(1, 2, 0) >= 1
    pred = result.labels >= 1
    report["dice_liver_vs_truth"] = float(
        2 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth))
    )
    del truth, pred
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "split_seconds",
                    "total_seconds",
                    "network_share",
                    "crf_opening_fraction",
                    "peak_rss_mb",
                    "peak_stage",
                    "peak_over_target",
                )
            },
            indent=1,
        ),
        flush=True,
    )

    if args.whole_crf_slices:
        oracle = oracle_liver_probability(np.load(labels_path, mmap_mode="r"))
        intensity = pp.intensity_range(volume.data)
        slab = shape[2] if args.whole_crf_slices < 0 else min(args.whole_crf_slices, shape[2])
        need_mb = shape[0] * shape[1] * slab * CRF_BYTES_PER_VOXEL / 2**20
        avail = _available_mb()
        if need_mb > 0.6 * avail:
            slab = max(int(slab * 0.6 * avail / need_mb), 8)
        z0 = (shape[2] - slab) // 2
        zs = slice(z0, z0 + slab)
        image = pp.window_and_scale(volume.data[:, :, zs], *intensity)
        stages.run(
            "liver_crf_whole",
            crf_lib.dense_crf_3d,
            oracle[:, :, zs],
            image,
            intensity_range=(0.0, 255.0),
        )
        row = stages.rows[-1]
        report["crf_whole"] = {
            "voxels": int(shape[0] * shape[1] * slab),
            "slices": slab,
            "available_mb_before": avail,
            **row,
            "scaled_to_volume_seconds": row["seconds"] * shape[2] / slab,
            "scaled_to_volume_extra_mb": (row["peak_mb"] - row["rss_before_mb"]) * shape[2] / slab,
        }
        del image, oracle
    if args.precision:
        report["precision"] = precision_comparison(liver_model)
    report["load_average_end"] = os.getloadavg()
    (tmp / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
