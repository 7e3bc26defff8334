"""The whole system end to end on built-in phantoms (what ``tools/demo.py`` runs).

Phantoms (training and held-out sets) -> liver training -> tumour training
(loss mask from the liver model) -> cascade inference on the held-out
phantoms -> LiTS evaluation -> report, overlays and training curves. Each
step reuses what a previous run left in the work directory, so rerunning
resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes and budgets of one demo profile."""

    shape: tuple[int, int, int]
    num_train: int
    num_test: int
    liver_steps: int
    tumor_steps: int
    batch_size: int
    seed: int = 2017
    #: Post-processing, chosen by measurement on these 96x96 phantoms (README,
    #: "Post-processing"); ``tools/infer.py`` keeps the original's defaults.
    #: The 3D dense CRF runs on nothing: its kernels, tuned for 512x512 LiTS
    #: slices, lowered the liver Dice per case by 0.004-0.009, and its
    #: bilateral term (std 20 intensity units, weight 10) erases small
    #: hypodense tumours whose fluid-filled neighbours share their intensity.
    crf_targets: tuple[str, ...] = ()
    #: The opening removes stray tumour voxels (a false tumour in a case
    #: without one costs that case's whole tumour Dice) but shaves the
    #: liver's one-voxel tips on 5 mm slices (-0.003 to -0.004 liver Dice).
    opening_targets: tuple[str, ...] = ("tumor",)
    #: Each slice's probability averaged over the three stacks that hold it
    #: (``SegmentOptions.slice_fusion``; free for the liver net): +0.003 liver
    #: Dice per case.
    slice_fusion: str = "mean"
    #: Test-time augmentation: the mean of the plain prediction and one of the
    #: input shifted by 2 pixels down and right (moved back), one more pass of
    #: each network: +0.002-0.004 liver Dice per case over three training runs.
    tta_shifts: tuple[tuple[int, int], ...] = ((2, 2),)

    def segment_options(self):
        from liverseg.inference import SegmentOptions

        return SegmentOptions(crf_targets=self.crf_targets, opening_targets=self.opening_targets,
                              slice_fusion=self.slice_fusion, tta_shifts=self.tta_shifts)


#: Batch 4 rather than 8: per update the fixed cost (optimiser, losses) is a
#: smaller share at 8, but per sample the smaller batch learns faster - on the
#: same 17,600 samples the liver net reached 0.957 Dice per case with 4 x 2200
#: updates against 0.949 with 8 x 1100 (docs/BENCHMARKS.md).
#: The tumour net meets its floor with room (0.88-0.89 per case after 600
#: updates), so it gets 400 and the run keeps a margin to 15 minutes.
DEFAULT = DemoSettings(shape=(96, 96, 32), num_train=30, num_test=6, liver_steps=2000,
                       tumor_steps=400, batch_size=4)
#: At 64x64 the fixed cost per update dominates: batch 4 with 640 + 400 updates
#: took 222 s for the same liver Dice (0.896) as batch 8 with 320 + 240 in 186 s.
QUICK = DemoSettings(shape=(64, 64, 24), num_train=12, num_test=2, liver_steps=320,
                     tumor_steps=240, batch_size=8)
#: The original tumour net's head ReLUs (an arg_scope slip of the original code)
#: settle at zero when the net learns from scratch (no ImageNet weights) with the
#: fast recipe, so the demo trains the README ("paper") tumour network; the liver
#: network is the original one. ``tools/train.py`` defaults to "original" for both.
VARIANTS = {"liver": "original", "tumor": "paper"}
TEST_SEED_OFFSET = 1000
TEST_START_INDEX = 1000


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _make_phantoms(work: Path, s: DemoSettings) -> tuple[Path, Path]:
    from liverseg.data.phantom import write_phantoms

    train_dir, test_dir = work / "phantoms" / "train", work / "phantoms" / "test"
    for directory, n, seed, start in ((train_dir, s.num_train, s.seed, 0),
                                      (test_dir, s.num_test, s.seed + TEST_SEED_OFFSET,
                                       TEST_START_INDEX)):
        marker = directory / ".complete.json"
        expected = {"shape": list(s.shape), "num": n, "seed": seed, "start": start}
        if marker.is_file() and json.loads(marker.read_text()) == expected:
            print(f"phantoms in {directory} exist", flush=True)
            continue
        directory.mkdir(parents=True, exist_ok=True)
        write_phantoms(directory, n, s.shape, seed=seed, start_index=start, overwrite=True)
        marker.write_text(json.dumps(expected) + "\n")
        print(f"wrote {n} phantoms {s.shape} to {directory}", flush=True)
    return train_dir, test_dir


def _train(stage: str, data_dir: Path, model_dir: Path, steps: int, s: DemoSettings,
           liver_model: Path | None = None) -> None:
    from liverseg.training.trainer import TrainConfig, train

    state = model_dir / "train_state.json"
    if state.is_file() and json.loads(state.read_text()).get("step", 0) >= steps and \
            (model_dir / "model.weights.h5").is_file():
        print(f"{stage} model in {model_dir} is trained", flush=True)
        return
    train(TrainConfig(stage=stage, data_dir=str(data_dir), model_dir=str(model_dir),
                      recipe="fast", variant=VARIANTS[stage], max_steps=steps,
                      batch_size=s.batch_size, mixed_precision=True,
                      liver_model=str(liver_model) if liver_model else None,
                      val_every=max(steps // 4, 1), save_every=max(steps // 4, 1),
                      log_every=max(steps // 20, 1), seed=s.seed))


def run_demo(work_dir: str, quick: bool = False, settings: DemoSettings | None = None) -> dict:
    """Runs every step; returns the evaluation report (also in ``work_dir/report.json``).

    ``settings`` replaces the profile ``quick`` picks (tests use a tiny one).
    """
    from liverseg.data import lits, nifti
    from liverseg.evaluation import report as report_lib
    from liverseg.evaluation.figures import save_comparison
    from liverseg.inference import RunOptions, run
    from liverseg.training.curves import plot_training_curves

    s = settings or (QUICK if quick else DEFAULT)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}

    _banner("1/5 phantoms")
    train_dir, test_dir = _make_phantoms(work, s)
    timings["phantoms"] = time.perf_counter() - t0

    _banner(f"2/5 liver network ({s.liver_steps} updates, fast recipe)")
    t = time.perf_counter()
    liver_dir, tumor_dir = work / "models" / "liver", work / "models" / "tumor"
    _train("liver", train_dir, liver_dir, s.liver_steps, s)
    timings["train_liver"] = time.perf_counter() - t

    _banner(f"3/5 tumour network ({s.tumor_steps} updates, loss mask from the liver model)")
    t = time.perf_counter()
    _train("tumor", train_dir, tumor_dir, s.tumor_steps, s, liver_model=liver_dir)
    timings["train_tumor"] = time.perf_counter() - t

    _banner("4/5 inference on the held-out phantoms")
    t = time.perf_counter()
    pred_dir = work / "predictions"
    result = run(test_dir, pred_dir, options=RunOptions(skip_existing=True),
                 liver_model=str(liver_dir), tumor_model=str(tumor_dir),
                 segment_options=s.segment_options())
    if not result.ok:
        from liverseg.errors import LiverSegError
        raise LiverSegError(f"inference failed for {len(result.failed)} case(s)")
    timings["inference"] = time.perf_counter() - t

    _banner("5/5 evaluation")
    t = time.perf_counter()
    report = report_lib.evaluate_to_files(pred_dir, test_dir, work / "report.json",
                                          overwrite=True)
    print(report_lib.format_table(report), flush=True)
    overlays = work / "overlays"
    for case in lits.discover_cases(test_dir):
        pred_path = pred_dir / case.segmentation.name
        volume = nifti.load_ct(case.volume, dtype=None)
        gt = nifti.load_labels(case.segmentation).data
        pred = nifti.load_labels(pred_path).data
        save_comparison(overlays / f"case-{case.case_id}.png", volume.data, gt, pred,
                        spacing=volume.spacing, title=f"case {case.case_id}")
    plot_training_curves({"liver": liver_dir / "metrics.csv", "tumour": tumor_dir / "metrics.csv"},
                         work / "training_curves.png")
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), flush=True)
    print(f"report: {work / 'report.json'}\noverlays: {overlays}\n"
          f"curves: {work / 'training_curves.png'}\nmodels: {liver_dir}, {tumor_dir}", flush=True)
    return report
