"""How a market parameter is declared: its default, meaning, rule and packed form, in one place.

A field of :class:`mmgym.core.params.MarketParams` is declared with :func:`param`, which keeps in
the field's metadata

- ``doc``: what the parameter means, with its units (the reference page prints it);
- ``rules``: the :class:`Rule` s its value must satisfy on its own (rules that relate several
  fields are written out in ``MarketParams.validate``);
- ``packed``: the :class:`Packed` entries it contributes to the kernel's parameter record, each
  named with the units the kernel uses (``latency_ticks``, ``jump_prob_per_tick``).

:func:`check_rules`, :func:`packed_dtype` and :func:`pack` derive the validation and the record
from these declarations, so adding a parameter is one declaration (and its use in the kernel).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Rule:
    """A requirement on one value: ``holds(value)``, phrased to complete "<name> must be ..."."""

    requirement: str
    holds: Callable[[Any], bool]


@dataclass(frozen=True)
class Packed:
    """One field of the kernel's parameter record.

    ``compute(params)`` gives its value (None: the declaring field's value as it is); ``shape``
    holds sizes or names of sizes (``"regimes"``, ``"levels"``, ...) resolved per market.
    """

    name: str
    compute: Callable[[Any], Any] | None = None
    dtype: str = "f8"
    shape: tuple[int | str, ...] = ()


def param(default: Any, doc: str, rules: Rule | tuple[Rule, ...], *packed: Packed) -> Any:
    """Declare a parameter field: default, meaning, rule(s) and its packed forms."""
    rule_tuple = rules if isinstance(rules, tuple) else (rules,)
    return dataclasses.field(
        default=default, metadata={"doc": doc, "rules": rule_tuple, "packed": packed}
    )


def field_doc(field: dataclasses.Field[Any]) -> str:
    """The meaning of a declared parameter."""
    return str(field.metadata.get("doc", ""))


def field_rules(field: dataclasses.Field[Any]) -> tuple[Rule, ...]:
    """The rules of a declared parameter."""
    return tuple(field.metadata.get("rules", ()))


def field_packed(field: dataclasses.Field[Any]) -> tuple[Packed, ...]:
    """The packed forms of a declared parameter."""
    return tuple(field.metadata.get("packed", ()))


def check_rules(params: Any) -> None:
    """Raise ValueError naming the first field (in declaration order) that breaks its rule."""
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        for rule in field_rules(field):
            if not rule.holds(value):
                raise ValueError(f"{field.name} must be {rule.requirement}, got {value!r}")


def _shape(packed: Packed, dims: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(dims[d] if isinstance(d, str) else d for d in packed.shape)


def packed_dtype(params_type: Any, dims: Mapping[str, int]) -> np.dtype:
    """The aligned record dtype of every packed form declared by ``params_type``'s fields: one
    shared object per layout (see :mod:`mmgym.core.layout` on numba's dispatch)."""
    return _packed_dtype(params_type, tuple(sorted(dims.items())))


@cache
def _packed_dtype(params_type: Any, dims_items: tuple[tuple[str, int], ...]) -> np.dtype:
    dims = dict(dims_items)
    entries: list[tuple[Any, ...]] = []
    for field in dataclasses.fields(params_type):
        for packed in field_packed(field):
            shape = _shape(packed, dims)
            entries.append(
                (packed.name, packed.dtype, shape) if shape else (packed.name, packed.dtype)
            )
    return np.dtype(entries, align=True)


def pack(params: Any, dims: Mapping[str, int]) -> NDArray[np.void]:
    """A one-element record holding every packed form of ``params``."""
    out = np.zeros(1, dtype=packed_dtype(type(params), dims))
    record = out[0]
    for field in dataclasses.fields(params):
        for packed in field_packed(field):
            value = packed.compute(params) if packed.compute else getattr(params, field.name)
            record[packed.name] = value
    return out


# --- rules ------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _interval(low: float, high: float, closed: str) -> tuple[str, Callable[[float], bool]]:
    """Text and test of an interval; ``closed`` is two of ``[``, ``(`` and ``]``, ``)``."""
    left, right = closed[0], closed[1]
    text = f"{left}{low:g}, {high:g}{right}"

    def inside(v: float) -> bool:
        above = v >= low if left == "[" else v > low
        below = v <= high if right == "]" else v < high
        return above and below

    return text, inside


POSITIVE = Rule("a finite number > 0", lambda v: is_number(v) and v > 0)
NON_NEGATIVE = Rule("a finite number >= 0", lambda v: is_number(v) and v >= 0)
BOOLEAN = Rule("True or False", lambda v: isinstance(v, bool | np.bool_))


def number_in(low: float, high: float, closed: str = "[]", noun: str = "") -> Rule:
    """A finite number in an interval (``noun``, e.g. "a rate", opens the requirement)."""
    text, inside = _interval(low, high, closed)
    requirement = f"{noun} in {text}" if noun else f"in {text}"
    return Rule(requirement, lambda v: is_number(v) and inside(v))


def greater_than(low: float, why: str) -> Rule:
    """A finite number > ``low``, with the reason."""
    return Rule(f"> {low:g} ({why})", lambda v: is_number(v) and v > low)


def sequence_of(count: int, rule: Rule, requirement: str) -> Rule:
    """A tuple or list of ``count`` values that each satisfy ``rule``."""

    def holds(v: Any) -> bool:
        return isinstance(v, tuple | list) and len(v) == count and all(rule.holds(x) for x in v)

    return Rule(requirement, holds)


def integer_in(low: int, high: int | None = None, even: bool = False) -> Rule:
    """An int in ``[low, high]`` (no upper bound if ``high`` is None), even if ``even``."""
    kind = "an even integer" if even else "an integer"
    requirement = f"{kind} >= {low}" if high is None else f"{kind} in [{low}, {high}]"

    def holds(v: Any) -> bool:
        return (
            isinstance(v, int)
            and not isinstance(v, bool)
            and v >= low
            and (high is None or v <= high)
            and not (even and v % 2)
        )

    return Rule(requirement, holds)


def one_of(choices: tuple[str, ...]) -> Rule:
    """One of the given names."""
    return Rule(f"one of {list(choices)}", lambda v: v in choices)
