"""Measured against published: a figure matches when it rounds to the published one at the precision the
paper wrote it with (11.37 M matches 11.4 M; 11.46 M does not). One flag per pair, one message per mismatch.
"""
from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from lsbench.query import is_missing

__all__ = ["OK", "MISMATCH", "rounding_interval", "within_rounding", "flag", "check_table"]

OK = "✓"
MISMATCH = "✗"


def _decimal(value: Any) -> Decimal:
    """The number as written: repr of a float (0.079 -> Decimal('0.079')), ints and strings as they are."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a published figure must be a number, not a bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def rounding_interval(published: float | int | str | Decimal) -> tuple[Decimal, Decimal]:
    """[low, high): the values that round (half up) to ``published`` at its written precision.

    11.4 -> [11.35, 11.45); 0.3 -> [0.25, 0.35); 0.079 -> [0.0785, 0.0795); 14708 -> [14707.5, 14708.5).
    """
    p = _decimal(published)
    if not p.is_finite():
        raise ValueError(f"not a finite number: {published!r}")
    half = Decimal(5).scaleb(p.as_tuple().exponent - 1)
    return p - half, p + half


def within_rounding(measured: float | int | str | Decimal, published: float | int | str | Decimal) -> bool:
    """Whether ``measured`` rounds to ``published`` at the published number's precision (decimal digits of
    the value as written, e.g. the toml float's repr): 11.37 vs 11.4 -> True, 11.46 vs 11.4 -> False."""
    m = _decimal(measured)
    if not m.is_finite():
        raise ValueError(f"not a finite number: {measured!r}")
    low, high = rounding_interval(published)
    return low <= m < high


def _decimals(published: Any) -> int:
    return max(0, -_decimal(published).as_tuple().exponent)


def flag(measured: Any, published: Any) -> str | None:
    """"✓", "✗ 5.49 vs 5.1" (measured shown one digit finer than published, or finer still where needed:
    "✗ 1.248 vs 1.3"), or None if either is missing."""
    if is_missing(measured) or is_missing(published):
        return None
    if within_rounding(float(measured), published):
        return OK
    # one digit finer than published, more where that rounding would land the shown value inside the interval
    digits = _decimals(published) + 1
    shown = f"{float(measured):.{digits}f}"
    while within_rounding(shown, published) and digits < 12:
        digits += 1
        shown = f"{float(measured):.{digits}f}"
    return f"{MISMATCH} {shown} vs {published}"


_CHECKS = (("params_ok", "params (fused)", "params_pub_M", "M", "params_cite"),
           ("macs_ok", "MACs (fvcore)", "macs_pub_G", "G", "macs_cite"))


def check_table(table: pd.DataFrame) -> list[str]:
    """One message per measured-vs-published mismatch (a flag starting with ✗), for ``--check``."""
    messages = []
    for _, row in table.iterrows():
        for flag_col, what, pub_col, unit, cite_col in _CHECKS:
            flag = row.get(flag_col)
            if not isinstance(flag, str) or not flag.startswith(MISMATCH):
                continue
            measured = flag.split()[1]  # the value compared, as the flag shows it
            published = row.get(pub_col)
            low, high = rounding_interval(published)
            cite = row.get(cite_col)
            msg = (f"{row['model']}: {what} measured {measured} {unit} does not round to the published "
                   f"{published} {unit}{f' ({cite})' if isinstance(cite, str) else ''}; it would have to lie "
                   f"in [{low}, {high})")
            note = row.get("params_note") if flag_col == "params_ok" else None
            if isinstance(note, str) and note:
                msg += f"; {note}"
            messages.append(msg)
    return messages
