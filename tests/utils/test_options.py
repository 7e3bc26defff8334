"""One definition per option: flags derived from dataclass fields (liverseg.utils.options)."""

import dataclasses

import pytest
from absl import flags

from liverseg.errors import ConfigError
from liverseg.utils.options import REQUIRED, define_flags, from_flags, option, options_of


@dataclasses.dataclass(frozen=True)
class Example:
    path: str = option(REQUIRED, "Where.")
    mode: str = option("fast", "How.", choices=("fast", "slow"))
    count: int = option(3, "How many.", lower_bound=0)
    rate: float = option(0.5, "How much.")
    on: bool = option(True, "Whether.")
    parts: tuple[str, ...] = option(("a", "b"), "Which.", choices=("a", "b", "c"))
    shifts: tuple[tuple[int, int], ...] = option((), "Where to.", kind="pairs")
    batch: int | str = option("auto", "Per call; 0 = auto.", kind="int", zero_means="auto")
    hidden: int = 7


def _parse(argv, **kwargs):
    values = flags.FlagValues()
    names = define_flags(Example, values, **kwargs)
    values(["prog"] + argv)
    return values, names


def test_flags_carry_the_fields_defaults_choices_and_help():
    values, names = _parse(["--path=/x"])
    assert "hidden" not in names and set(names) == set(options_of(Example))
    assert Example(**from_flags(Example, values, names)) == Example(path="/x")
    assert values["mode"].help.endswith("How.") and values["parts"].help.endswith("a, b, c.")
    assert values["batch"].default == 0


def test_values_of_every_kind_are_read_back():
    values, names = _parse(
        [
            "--path=/x",
            "--mode=slow",
            "--count=5",
            "--rate=0.25",
            "--noon",
            "--parts=c,a",
            "--shifts=2:2,-1:0",
            "--batch=4",
        ]
    )
    got = Example(**from_flags(Example, values, names))
    assert got == Example(
        path="/x",
        mode="slow",
        count=5,
        rate=0.25,
        on=False,
        parts=("c", "a"),
        shifts=((2, 2), (-1, 0)),
        batch=4,
    )
    values, names = _parse(["--path=/x", "--parts=", "--batch=0"])
    got = from_flags(Example, values, names)
    assert got["parts"] == () and got["batch"] == "auto"


def test_unset_defaults_report_only_the_flags_given():
    values, names = _parse(
        ["--path=/x", "--count=9"],
        unset_defaults=["count", "mode", "parts"],
        unset_help="Default: stored.",
    )
    assert values["count"].help.endswith("Default: stored.")
    given = from_flags(Example, values, ["count", "mode", "parts"], given_only=True)
    assert given == {"count": 9}


@pytest.mark.parametrize(
    "argv,problem",
    [(["--parts=a,z"], "unknown value"), (["--shifts=2"], "A:B"), (["--shifts=a:b"], "A:B")],
)
def test_bad_values_name_the_option(argv, problem):
    values, names = _parse(["--path=/x"] + argv)
    with pytest.raises(ConfigError, match=problem):
        from_flags(Example, values, names)


def test_a_required_option_is_a_required_flag():
    values = flags.FlagValues()
    define_flags(Example, values)
    with pytest.raises(flags.IllegalFlagValueError):
        values(["prog"])
