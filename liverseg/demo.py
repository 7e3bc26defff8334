"""The whole system end to end on built-in phantoms (what ``tools/demo.py`` runs).

Phantoms (training set, held-out set of the same generator, and an external
family written independently of it) -> liver training -> tumour training
(loss mask from the liver model) -> post-processing chosen on the
validation cases and stored with the models -> the cascade, with the
models' stored choices and grid (``tools/infer.py``'s defaults), on both
test sets -> LiTS evaluation of both -> reports, overlays and training
curves. Each step reuses what a previous run left in the work directory,
so rerunning resumes.
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
    num_external: int = 2
    #: in-plane pixels and slices of the external family's volumes
    external_size: int = 64
    external_slices: int = 16
    seed: int = 2017
    #: the training generator's style (``liverseg.phantoms.training.STYLES``)
    style: str = "wide"
    #: share of the training phantoms kept for validation and tuning
    val_fraction: float = 0.15
    #: training switches (None: the fast recipe's: augmentation on, geometry
    #: normalised); the ablation in benchmarks/ turns them off
    augment: bool | None = None
    geometry: str | None = None


#: Batch 4 rather than 8: per sample the smaller batch learns faster on this
#: CPU (docs/BENCHMARKS.md).
DEFAULT = DemoSettings(
    shape=(96, 96, 32),
    num_train=40,
    num_test=6,
    liver_steps=1150,
    tumor_steps=700,
    batch_size=4,
    num_external=8,
    external_size=128,
    external_slices=32,
)
QUICK = DemoSettings(
    shape=(64, 64, 24),
    num_train=14,
    num_test=2,
    liver_steps=240,
    tumor_steps=120,
    batch_size=8,
    num_external=3,
    external_size=80,
    external_slices=24,
    val_fraction=0.2,
)
TEST_SEED_OFFSET = 1000
TEST_START_INDEX = 1000
EXTERNAL_SEED_OFFSET = 5000


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _is_complete(directory: Path, expected: dict) -> bool:
    """Whether ``directory`` holds a finished phantom set made with ``expected``."""
    marker = directory / ".complete.json"
    if marker.is_file() and json.loads(marker.read_text()) == expected:
        print(f"phantoms in {directory} exist", flush=True)
        return True
    directory.mkdir(parents=True, exist_ok=True)
    return False


def _mark_complete(directory: Path, expected: dict, what: str) -> None:
    (directory / ".complete.json").write_text(json.dumps(expected) + "\n")
    print(f"wrote {what} to {directory}", flush=True)


def _make_phantoms(work: Path, s: DemoSettings) -> tuple[Path, Path, Path]:
    from liverseg.phantoms.external import write_external_phantoms
    from liverseg.phantoms.training import write_phantoms

    train_dir, test_dir = work / "phantoms" / "train", work / "phantoms" / "test"
    external_dir = work / "phantoms" / "external"
    for directory, n, seed, start in (
        (train_dir, s.num_train, s.seed, 0),
        (test_dir, s.num_test, s.seed + TEST_SEED_OFFSET, TEST_START_INDEX),
    ):
        expected = {
            "shape": list(s.shape),
            "num": n,
            "seed": seed,
            "start": start,
            "style": s.style,
        }
        if not _is_complete(directory, expected):
            write_phantoms(
                directory, n, s.shape, seed=seed, start_index=start, overwrite=True, style=s.style
            )
            _mark_complete(directory, expected, f"{n} {s.style} phantoms {s.shape}")
    seed = s.seed + EXTERNAL_SEED_OFFSET
    expected = {
        "family": "external",
        "num": s.num_external,
        "seed": seed,
        "size": s.external_size,
        "slices": s.external_slices,
    }
    if not _is_complete(external_dir, expected):
        write_external_phantoms(
            external_dir,
            s.num_external,
            seed,
            size=s.external_size,
            num_slices=s.external_slices,
            overwrite=True,
        )
        _mark_complete(external_dir, expected, f"{s.num_external} external-family phantoms")
    return train_dir, test_dir, external_dir


def _train(
    stage: str,
    data_dir: Path,
    model_dir: Path,
    steps: int,
    s: DemoSettings,
    liver_model: Path | None = None,
) -> None:
    from liverseg.training.trainer import TrainConfig
    from liverseg.tuning import train_then_tune

    state = model_dir / "train_state.json"
    if (
        state.is_file()
        and json.loads(state.read_text()).get("step", 0) >= steps
        and (model_dir / "model.weights.h5").is_file()
        and (stage == "liver" or (model_dir / "postprocessing.json").is_file())
    ):
        print(f"{stage} model in {model_dir} is trained", flush=True)
        return
    train_then_tune(
        TrainConfig(
            stage=stage,
            data_dir=str(data_dir),
            model_dir=str(model_dir),
            recipe="fast",
            max_steps=steps,
            batch_size=s.batch_size,
            mixed_precision=True,
            liver_model=str(liver_model) if liver_model else None,
            val_fraction=s.val_fraction,
            val_every=max(steps // 4, 1),
            save_every=max(steps // 4, 1),
            log_every=max(steps // 20, 1),
            seed=s.seed,
            augment=s.augment,
            geometry=s.geometry,
        )
    )


def _segment(test_dir: Path, pred_dir: Path, liver_dir: Path, tumor_dir: Path) -> None:
    """The cascade as ``tools/infer.py`` runs it by default."""
    from liverseg.errors import LiverSegError
    from liverseg.inference import RunOptions, resolve_options, run

    resolved = resolve_options(str(liver_dir), str(tumor_dir))
    print(
        f"post-processing: {resolved.choice_source}; grid: {resolved.geometry_source}", flush=True
    )
    result = run(
        test_dir,
        pred_dir,
        options=RunOptions(skip_existing=True),
        liver_model=str(liver_dir),
        tumor_model=str(tumor_dir),
        segment_options=resolved.segment_options,
        geometry=resolved.geometry,
        provenance={
            "postprocessing": {"source": resolved.choice_source},
            "geometry": {"source": resolved.geometry_source},
        },
    )
    if not result.ok:
        raise LiverSegError(f"inference failed for {len(result.failed)} case(s) of {test_dir}")


def _evaluate(name: str, pred_dir: Path, test_dir: Path, output: Path, overlays: Path) -> dict:
    from liverseg.data import lits, nifti
    from liverseg.evaluation import report as report_lib
    from liverseg.evaluation.figures import save_comparison

    report = report_lib.evaluate_to_files(pred_dir, test_dir, output, overwrite=True)
    print(f"\n{name}\n" + report_lib.format_table(report), flush=True)
    for case in lits.discover_cases(test_dir):
        pred_path = pred_dir / case.segmentation.name
        volume = nifti.load_ct(case.volume, dtype=None)
        gt = nifti.load_labels(case.segmentation).data
        pred = nifti.load_labels(pred_path).data
        save_comparison(
            overlays / f"case-{case.case_id}.png",
            volume.data,
            gt,
            pred,
            spacing=volume.spacing,
            title=f"{name}: case {case.case_id}",
        )
    return report


def run_demo(work_dir: str, quick: bool = False, settings: DemoSettings | None = None) -> dict:
    """Runs every step; returns the held-out evaluation report (also in
    ``work_dir/report.json``) with the external family's under ``"external"``
    (also in ``work_dir/report_external.json``).

    ``settings`` replaces the profile ``quick`` picks (tests use a tiny one).
    """
    from liverseg.training.curves import plot_training_curves

    s = settings or (QUICK if quick else DEFAULT)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}

    _banner("1/5 phantoms: training and held-out sets, external family")
    train_dir, test_dir, external_dir = _make_phantoms(work, s)
    timings["phantoms"] = time.perf_counter() - t0

    _banner(f"2/5 liver network ({s.liver_steps} updates, fast recipe)")
    t = time.perf_counter()
    liver_dir, tumor_dir = work / "models" / "liver", work / "models" / "tumor"
    _train("liver", train_dir, liver_dir, s.liver_steps, s)
    timings["train_liver"] = time.perf_counter() - t

    _banner(
        f"3/5 tumour network ({s.tumor_steps} updates, loss mask from the liver model), "
        "then post-processing chosen on the validation cases"
    )
    t = time.perf_counter()
    _train("tumor", train_dir, tumor_dir, s.tumor_steps, s, liver_model=liver_dir)
    timings["train_tumor_and_tune"] = time.perf_counter() - t

    _banner("4/5 inference (infer.py's defaults) on the held-out and external phantoms")
    t = time.perf_counter()
    sets = (
        (
            "held-out (training generator)",
            test_dir,
            work / "predictions",
            work / "report.json",
            work / "overlays",
        ),
        (
            "external family",
            external_dir,
            work / "predictions_external",
            work / "report_external.json",
            work / "overlays_external",
        ),
    )
    for _, directory, pred_dir, _, _ in sets:
        _segment(directory, pred_dir, liver_dir, tumor_dir)
    timings["inference"] = time.perf_counter() - t

    _banner("5/5 evaluation")
    t = time.perf_counter()
    reports = [
        _evaluate(name, pred_dir, directory, output, overlays)
        for name, directory, pred_dir, output, overlays in sets
    ]
    plot_training_curves(
        {"liver": liver_dir / "metrics.csv", "tumour": tumor_dir / "metrics.csv"},
        work / "training_curves.png",
    )
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    print("\nDice per case      liver   tumour", flush=True)
    for (name, *_), report in zip(sets, reports):
        print(
            f"  {name:<32} {_fmt(report['liver'].get('dice_per_case'))}  "
            f"{_fmt(report['tumor'].get('dice_per_case'))}",
            flush=True,
        )
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), flush=True)
    print(
        f"reports: {sets[0][3]}, {sets[1][3]}\noverlays: {sets[0][4]}, {sets[1][4]}\n"
        f"curves: {work / 'training_curves.png'}\nmodels: {liver_dir}, {tumor_dir}",
        flush=True,
    )
    result = dict(reports[0])
    result["external"] = reports[1]
    return result


def _fmt(value) -> str:
    return "   -  " if value is None else f"{value:.4f}"
