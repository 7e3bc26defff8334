"""200 fuzzed NIfTI volumes through one ``tools/infer.py`` run (issue 18's invariant).

Each input is either written (the output reopens with nibabel, with the
input's shape and affine as the project's reader reads them) or refused
with exactly one ``ERROR <path>: ...`` line; no traceback, no line naming
no file, no temporary or partial file, and the summary line agrees. The
cases come from ``tests/reliability/fuzz.py`` (seed 0, cases 0-199); a
failure names each case's operators, and ``fuzz.make_case(0, i)`` rebuilds
it. ``benchmarks/fuzz_campaign.py`` runs 5,000 more with the same code.
"""

import collections

import pytest

from tests.reliability import fuzz

FUZZ_SEED = 0
CASES = 200


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory, tiny_models):
    from liverseg.inference.runner import output_name

    liver, tumor = tiny_models
    cases = fuzz.make_cases(FUZZ_SEED, 0, CASES)
    root = tmp_path_factory.mktemp("fuzz")
    return cases, fuzz.run_infer(cases, root, liver, tumor, output_name, timeout=600)


def test_every_fuzzed_input_is_written_or_refused_by_name(fuzz_run):
    cases, outcome = fuzz_run
    assert not outcome.violations, outcome.report()
    assert len(outcome.written) + len(outcome.refused) == len(cases)


def test_the_cases_exercise_both_outcomes_and_many_refusal_reasons(fuzz_run):
    """A fuzzer whose mutations were all refused (or all harmless) would prove little."""
    _, outcome = fuzz_run
    reasons = collections.Counter(fuzz.reason_class(problem) for _, problem in outcome.refused)
    assert len(outcome.written) >= CASES // 5 and len(outcome.refused) >= CASES // 5
    assert len(reasons) >= 8, reasons
    assert "other" not in reasons, [
        p for _, p in outcome.refused if fuzz.reason_class(p) == "other"
    ]


def test_cases_are_reproducible_and_name_their_operators():
    first, again = fuzz.make_case(FUZZ_SEED, 17), fuzz.make_case(FUZZ_SEED, 17)
    assert first.data == again.data and first.describe() == again.describe()
    assert first.describe().startswith(f"make_case({FUZZ_SEED}, 17): {first.base}: ")
    assert all(name in {op.name for op in fuzz.OPERATORS} for name, _ in first.ops)
    used = {name for case in fuzz.make_cases(FUZZ_SEED, 0, CASES) for name, _ in case.ops}
    assert used == {op.name for op in fuzz.OPERATORS}


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    """The invariant's check, on a made-up run that breaks it in every way it can."""
    from liverseg.data import nifti

    seed = fuzz.SEEDS[2]  # uncompressed
    cases = [
        fuzz.Case(0, i, seed.name, f"volume-{i}.nii", (), fuzz.seed_bytes(seed)) for i in range(5)
    ]
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for case in cases:
        case.write(src)
    volume = nifti.load_ct(src / "volume-0.nii")
    nifti.save_labels(out / "segmentation-0.nii", volume.data > 0, volume)  # good
    (out / "segmentation-1.nii").write_bytes(b"half a file")  # written but unreadable
    nifti.save_labels(out / "segmentation-2.nii", volume.data > 0, volume)  # yet refused
    (out / ".segmentation-4.nii.x1.tmp.nii").write_bytes(b"partial")
    (out / "inference_options.json").write_text("{}")
    stdout = "post-processing: original; grid: native\n2 written, 0 skipped, 3 failed -> out\n"
    stderr = "\n".join(
        [
            "INFO 1/5 volume-0.nii -> segmentation-0.nii: 32 x 32 x 8, ...",
            "INFO 2/5 volume-1.nii -> segmentation-1.nii: 32 x 32 x 8, ...",
            f"ERROR {src}/volume-2.nii: corrupt file: bad",
            f"ERROR {src}/volume-3.nii: file is truncated",
            f"ERROR {src}/volume-3.nii: unexpected ValueError: boom",
            "WARNING qform_code 9 not valid; setting to 0",
            "Traceback (most recent call last):",
        ]
    )
    outcome = fuzz.check_run(
        cases, src, out, 1, stdout, stderr, lambda n: n.replace("volume", "segmentation")
    )
    kinds = collections.Counter(v.kind for v in outcome.violations)
    assert kinds == {
        "not_reopening": 1,  # segmentation-1
        "output_for_refused": 1,  # volume-2
        "several_lines": 1,  # volume-3
        "unexpected_error": 1,  # volume-3
        "missing_line": 1,  # volume-4
        "partial_file": 1,
        "unnamed_line": 2,  # the raw nibabel warning and the traceback's first line
        "traceback": 1,
        "summary": 1,  # 2 written claimed, 1 counted
    }, outcome.report()
    assert [c.name for c in outcome.written] == ["volume-0.nii"]
    assert "make_case(0, 4)" in outcome.report()
