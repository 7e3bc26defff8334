"""One definition per option: dataclass fields that the tools turn into flags.

A field made with :func:`option` carries its help text, allowed values and
bounds; :func:`define_flags` defines the matching absl flags (name, type,
default, choices and help all come from the field) and :func:`from_flags`
reads them back into keyword arguments for the dataclass. So a default or a
choice is written once, in the library, and every tool that exposes the
option shows the same thing.

Kinds: ``bool`` (``--name`` / ``--noname``), ``int``, ``float``, ``str``,
``enum`` (``choices``), ``list`` (comma-separated; ``choices`` checks the
items; an empty value is the empty tuple) and ``pairs`` (comma-separated
``A:B`` integer pairs, e.g. ``--tta_shifts=2:2,-1:0``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from liverseg.errors import ConfigError

KINDS = ("bool", "int", "float", "str", "enum", "list", "pairs")
_META = "liverseg_option"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What a tool needs to know about one option besides its name and default."""

    help: str
    kind: str
    choices: tuple | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    #: an ``int`` option whose field also takes one non-integer value (e.g.
    #: "auto"): the flag shows it as 0
    zero_means: Any = None


def _kind_of(default, choices) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, tuple):
        return "pairs" if default and isinstance(default[0], tuple) else "list"
    if choices is not None:
        return "enum"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "str"


REQUIRED = object()
"""``option(REQUIRED, ...)``: a field without default, a flag the tool requires."""


def option(
    default,
    help: str,
    *,
    kind: str | None = None,
    choices: Iterable | None = None,
    lower_bound: float | None = None,
    upper_bound: float | None = None,
    zero_means: Any = None,
    **field_kwargs,
):
    """A dataclass field with its option metadata (kind inferred from the default)."""
    choices = tuple(choices) if choices is not None else None
    if default is REQUIRED or default is None:
        kind = kind or ("enum" if choices is not None else "str")
    kind = kind or _kind_of(default, choices)
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    spec = OptionSpec(
        help=help,
        kind=kind,
        choices=choices,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        zero_means=zero_means,
    )
    if default is REQUIRED:
        return dataclasses.field(metadata={_META: spec}, **field_kwargs)
    return dataclasses.field(default=default, metadata={_META: spec}, **field_kwargs)


def options_of(cls) -> dict[str, tuple[dataclasses.Field, OptionSpec]]:
    """The fields of ``cls`` made with :func:`option`, in definition order."""
    return {f.name: (f, f.metadata[_META]) for f in dataclasses.fields(cls) if _META in f.metadata}


def _help(spec: OptionSpec, default) -> str:
    text = spec.help
    if spec.choices and spec.kind == "list":
        text += f" Items: {', '.join(map(str, spec.choices))}."
    return text


def _flag_default(spec: OptionSpec, default):
    if default is None:
        return None
    if spec.zero_means is not None and default == spec.zero_means:
        return 0
    if spec.kind == "list":
        return list(default)
    if spec.kind == "pairs":
        return [f"{a}:{b}" for a, b in default]
    return default


def define_flags(
    cls,
    flag_values,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    unset_defaults: Sequence[str] = (),
    unset_help: str = "",
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """Defines an absl flag per option of ``cls`` (all, or ``include``, minus ``exclude``).

    ``unset_defaults``: options whose flag defaults to None ("not given"), for
    tools where another source (a model's stored choice) decides unless the
    flag is given, which ``unset_help`` says; ``defaults``: a tool's own
    default for an option. Returns the names defined.
    """
    from absl import flags

    caller = sys._getframe(1).f_globals.get("__name__", "")
    module_name = sys.argv[0] if caller == "__main__" else caller  # absl's help groups by it
    specs = options_of(cls)
    names = [n for n in (include if include is not None else specs) if n not in exclude]
    defaults = dict(defaults or {})
    for name in names:
        if name not in specs:
            raise ValueError(f"{cls.__name__} has no option {name!r}")
        f, spec = specs[name]
        required = f.default is dataclasses.MISSING
        default = None if name in unset_defaults or required else defaults.get(name, f.default)
        value = _flag_default(spec, default)
        text = _help(spec, default) + (
            f" {unset_help}" if name in unset_defaults and unset_help else ""
        )
        kw = {"flag_values": flag_values, "module_name": module_name}
        if spec.kind == "bool":
            flags.DEFINE_bool(name, value, text, **kw)
        elif spec.kind == "int":
            flags.DEFINE_integer(
                name, value, text, lower_bound=spec.lower_bound, upper_bound=spec.upper_bound, **kw
            )
        elif spec.kind == "float":
            flags.DEFINE_float(
                name, value, text, lower_bound=spec.lower_bound, upper_bound=spec.upper_bound, **kw
            )
        elif spec.kind == "enum":
            flags.DEFINE_enum(name, value, [str(c) for c in spec.choices], text, **kw)
        elif spec.kind in ("list", "pairs"):
            flags.DEFINE_list(name, value, text, **kw)
        else:
            flags.DEFINE_string(name, value, text, **kw)
        if required:
            flags.mark_flag_as_required(name, flag_values=flag_values)
    return names


def parse_pairs(name: str, values: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``["2:2", "-1:0"]`` -> ``((2, 2), (-1, 0))`` (ConfigError naming the option)."""
    try:
        return tuple(tuple(int(part) for part in v.split(":", 1)) for v in values if v)
    except ValueError:
        raise ConfigError(f"{name}: expected A:B integer pairs, got {','.join(values)!r}") from None


def _value(name: str, spec: OptionSpec, raw):
    if raw is None:
        return None
    if spec.zero_means is not None and raw == 0:
        return spec.zero_means
    if spec.kind == "pairs":
        pairs = parse_pairs(name, raw)
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{name}: expected A:B integer pairs, got {','.join(raw)!r}")
        return pairs
    if spec.kind == "list":
        items = tuple(v.strip() for v in raw if v.strip())
        if spec.choices is not None:
            unknown = [v for v in items if v not in spec.choices]
            if unknown:
                raise ConfigError(
                    f"{name}: unknown value(s) {', '.join(map(repr, unknown))}; "
                    f"choose from {', '.join(map(str, spec.choices))}"
                )
        return items
    return raw


def from_flags(
    cls, flag_values, names: Iterable[str], *, given_only: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from the flags ``names`` (``define_flags``'s).

    ``given_only``: only the flags whose value is not None (options left
    unset with ``unset_defaults`` and not given on the command line are out).
    """
    specs = options_of(cls)
    out = {}
    for name in names:
        value = _value(name, specs[name][1], flag_values[name].value)
        if value is None and given_only:
            continue
        out[name] = value
    return out
