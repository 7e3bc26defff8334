"""Fuzzing campaign: thousands of mutated NIfTI volumes through ``tools/infer.py``.

The cases are ``tests/reliability/fuzz.py``'s (``make_case(seed, i)`` for
``i`` in ``start .. start + cases - 1``), run in chunks of ``--chunk`` inputs,
one ``infer.py`` process per chunk, with untrained liver and tumour networks
built here (fixed seeds). Each chunk is held to the invariant of issue 18 by
the same check as ``tests/reliability/test_fuzz.py``: every input written
(reopening with nibabel and ``load_labels``, with the input's shape and
affine) or refused with exactly one ``ERROR <path>: ...`` line; no
traceback, no line naming no file, no partial file, no output for a refused
input, summary line and exit status agreeing.

Prints a line per chunk and a summary; writes a JSON summary (counts,
violations by kind with every violating case, refusals by reason class,
per-operator and per-seed counts, wall time, machine) to ``--json``. A
chunk's directory is removed after its check unless it holds a violation
(or ``--keep``). Exit status 1 if any violation was found.

Usage:
  python benchmarks/fuzz_campaign.py --work_dir=/tmp/fuzz              # 5,000 cases, seed 1
  python benchmarks/fuzz_campaign.py --work_dir=/tmp/fuzz --cases=200 --seed=0
  python benchmarks/fuzz_campaign.py --work_dir=/tmp/fuzz --start=1234 --cases=1 --keep  # one case
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from tests.reliability import fuzz


def _models(work: Path) -> tuple[Path, Path]:
    from liverseg.models import build_ds_sffnet, save_model

    root = work / "models"
    if not (root / "tumor" / "model_config.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        save_model(build_ds_sffnet("liver", seed=0), root / "liver")
        save_model(build_ds_sffnet("tumor", seed=0), root / "tumor")
    return root / "liver", root / "tumor"


def _machine() -> dict:
    import nibabel
    import numpy
    import tensorflow

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "nibabel": nibabel.__version__,
        "tensorflow": tensorflow.__version__,
    }


class Tally:
    """The campaign's figures, chunk by chunk."""

    def __init__(self):
        self.cases = self.written = self.refused = self.warned = 0
        self.violations: list[dict] = []
        self.reasons = collections.Counter()
        self.reason_examples: dict[str, str] = {}
        self.operators = collections.defaultdict(collections.Counter)
        self.seeds = collections.defaultdict(collections.Counter)

    def add(self, cases, outcome: fuzz.Outcome) -> None:
        status = {c.name: "written" for c in outcome.written}
        for case, problem in outcome.refused:
            status[case.name] = "refused"
            reason = fuzz.reason_class(problem)
            self.reasons[reason] += 1
            self.reason_examples.setdefault(reason, f"{case.describe()} -> {problem[:300]}")
        for v in outcome.violations:
            if v.case is not None:
                status[v.case.name] = "violation"
            self.violations.append(
                {"kind": v.kind, "detail": v.detail[:1000], "case": v.case and v.case.describe()}
            )
        for case in cases:
            outcome_of = status.get(case.name, "violation")
            self.seeds[case.base][outcome_of] += 1
            for name in dict.fromkeys(name for name, _ in case.ops):
                self.operators[name][outcome_of] += 1
        self.cases += len(cases)
        self.written += len(outcome.written)
        self.refused += len(outcome.refused)
        self.warned += outcome.warned

    def by_kind(self) -> dict:
        counts = collections.Counter(v["kind"] for v in self.violations)
        return {kind: counts.get(kind, 0) for kind in fuzz.VIOLATION_KINDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True, type=Path)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1, help="fuzzer seed (the test uses 0)")
    parser.add_argument("--start", type=int, default=0, help="index of the first case")
    parser.add_argument("--chunk", type=int, default=500, help="cases per infer.py run")
    parser.add_argument(
        "--json", type=Path, default=None, help="default WORK_DIR/fuzz_campaign.json"
    )
    parser.add_argument("--keep", action="store_true", help="keep every chunk's files")
    args = parser.parse_args()

    from liverseg.inference.runner import output_name

    logging.basicConfig(level=logging.ERROR)  # the checker's own reads warn; the run's count
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    json_path = args.json or work / "fuzz_campaign.json"
    liver, tumor = _models(work)
    tally = Tally()
    started = time.perf_counter()
    starts = list(range(args.start, args.start + args.cases, args.chunk))
    for k, first in enumerate(starts, start=1):
        count = min(args.chunk, args.start + args.cases - first)
        root = work / f"chunk-{args.seed}-{first}"
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        cases = fuzz.make_cases(args.seed, first, count)
        outcome = fuzz.run_infer(cases, root, liver, tumor, output_name)
        tally.add(cases, outcome)
        if not outcome.violations and not args.keep:
            shutil.rmtree(root)
        elapsed = time.perf_counter() - started
        eta = elapsed / tally.cases * (args.cases - tally.cases)
        print(
            f"chunk {k}/{len(starts)} (cases {first}-{first + count - 1}): "
            f"{len(outcome.written)} written, {len(outcome.refused)} refused, "
            f"{len(outcome.violations)} violations, {time.perf_counter() - t:.0f} s; "
            f"total {tally.cases}: {tally.written} written, {tally.refused} refused, "
            f"{len(tally.violations)} violations; ETA {eta / 60:.1f} min",
            flush=True,
        )
        for v in outcome.violations[:10]:
            print(f"  {v}", flush=True)
    wall = time.perf_counter() - started

    summary = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "fuzz_seed": args.seed,
        "first_case": args.start,
        "cases": tally.cases,
        "chunk": args.chunk,
        "written": tally.written,
        "refused": tally.refused,
        "inputs_with_warnings": tally.warned,
        "violations": len(tally.violations),
        "violations_by_kind": tally.by_kind(),
        "violation_cases": tally.violations,
        "refusals_by_reason": dict(tally.reasons.most_common()),
        "refusal_examples": tally.reason_examples,
        "operators": {op.name: dict(tally.operators[op.name]) for op in fuzz.OPERATORS},
        "seeds": {seed.name: dict(tally.seeds[seed.name]) for seed in fuzz.SEEDS},
        "wall_seconds": round(wall, 1),
        "seconds_per_case": round(wall / max(tally.cases, 1), 4),
    }
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{tally.cases} cases: {tally.written} written, {tally.refused} refused, "
        f"{len(tally.violations)} violations {summary['violations_by_kind']}; "
        f"{wall / 60:.1f} min -> {json_path}"
    )
    for reason, n in tally.reasons.most_common():
        print(f"  refused, {reason}: {n}")
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
