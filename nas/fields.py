"""Typed scalar fields: where every user value becomes a finite, bounded number, a strict boolean or a choice.

Every kind of input goes through these few functions: genomes (:mod:`nas.genome.parse`), study and
ablation configs (:mod:`nas.config_validation`), the training budget (:mod:`nas.train.config`), search
spaces (:mod:`nas.search.space`), command-line flags (:func:`flag_type`) and environment variables
(:func:`env_number`). The rules are the same everywhere:

- numbers are finite (no ``nan``/``inf``) and lie in the field's range; integers also stay under an
  implementation cap (``INT64_MAX`` unless the field has a tighter one, such as a seed's ``2**32 - 1``),
  so a 401-digit value is refused in one line instead of overflowing deep inside;
- ``true``/``false`` are not numbers, and numbers are not booleans;
- numpy scalars (``np.int64(32)``, ``np.float32(0.5)``, ``np.bool_``) count as the Python values they
  hold;
- strings are numbers only where the project parses them (``'1/12'`` in genomes and spaces, ``'2e-3'``
  in configs): ``text=True``;
- messages are one line: ``FIELD must be WHAT, got VALUE``, the value shortened by :func:`show` (never
  a 401-digit number or a 50 MB string in full), with the "did you mean" hint of :func:`nas.errors.closest`
  for choices.

Why functions of our own rather than pydantic models: the documents are checked in pieces whose meaning
depends on other fields (a stage's options depend on its mixer, ``heads`` on ``dim``, the layout shorthand
expands into stages, an ablation's overrides are re-parsed as genomes), so models would still need the
hand-written cross-field code and would only move these scalar rules; the messages are the project's own
(label, field, value, allowed range, hints) and pydantic's would have to be reworded through its error
structures; genomes are parsed for every sampled trial and ablation cell, where a function call is
cheaper than a model; and the genome layer imports neither Ray nor pydantic. What pydantic's settings
would give (``allow_inf_nan=False``, strict ints, bounds, ``extra="forbid"``) is each one rule below or,
for unknown keys, the ``known`` lists of each validator.
"""
from __future__ import annotations

import argparse
import math
import re
import reprlib
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

from nas.errors import NasError, closest

__all__ = ["INT32_MAX", "INT64_MAX", "SEED_MAX", "plain", "plain_tree", "show", "integer", "real", "flag", "choice",
           "flag_type", "env_number"]

INT64_MAX = 2**63 - 1  # torch, numpy and SQLite store integers in 64 bits
INT32_MAX = 2**31 - 1  # counts and sizes: anything larger is a typo long before it is a network
SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2**32
FLOAT_MAX = 1e300  # floats past this overflow to inf as soon as they are multiplied by anything


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(3)`` -> ``3``); anything else unchanged."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def plain_tree(value: Any) -> Any:
    """:func:`plain` through mappings and lists (numpy arrays become lists); other values unchanged."""
    value = plain(value)
    if isinstance(value, dict):
        return {plain(k): plain_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_tree(v) for v in value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


class _Short(reprlib.Repr):
    """``repr`` with bounded size and depth; huge integers say how many digits they have."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxother = limit
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 6, 6, 6, 6  # noqa: E501

    def repr_int(self, x: int, level: int) -> str:
        return _int_text(x)

    def repr_str(self, x: str, level: int) -> str:
        if len(x) <= self.maxstring:
            return repr(x)
        return f"{x[:self.maxstring // 2]!r}... ({len(x):,} characters)"


def _int_text(x: int) -> str:
    if abs(x) < 10**20:
        return str(x)
    if x.bit_length() < 13_000:
        digits = f"a {len(str(abs(x))):,}-digit"
    else:  # str() of an integer of more than 4,300 digits raises in Python 3.11
        digits = f"an about {int(abs(x).bit_length() * math.log10(2)):,}-digit"
    return f"{'-' if x < 0 else ''}{digits} integer"


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters and 3 levels of nesting, for messages."""
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    try:
        text = _Short(limit).repr(value)
    except Exception:  # noqa: BLE001 - a user object whose __repr__ fails is still named
        return f"a {type(value).__name__}"
    if len(text) > 2 * limit:  # nested containers: each level is cut, the whole may still be long
        size = f" ({type(value).__name__} of {len(value):,} items)" if hasattr(value, "__len__") else ""
        text = f"{text[:limit]}...{size}"
    return text


def _bound(x: float) -> str:
    if isinstance(x, int) and abs(x) >= 10_000:
        return f"{x:,}"
    return f"{x:g}"


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_bound(high)}"
    return ""


_BIG_EXPONENT = re.compile(r"[eE][-+]?0*\d{4,}$")


def _from_text(value: str) -> Any:
    """``'1/12'``, ``'2e-3'``, ``' 5 '`` as a number (int when whole); anything else stays a string."""
    text = value.strip()
    if _BIG_EXPONENT.search(text):  # Fraction('1e999999999') would compute 10**999999999
        try:
            return float(text)  # inf or 0.0, at once
        except ValueError:
            return value
    try:
        fraction = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return value
    if fraction.denominator == 1:
        return int(fraction)
    try:
        return float(fraction)
    except OverflowError:
        return math.inf if fraction > 0 else -math.inf


def _fail(where: str, noun: str, span: str, value: Any, error: type[Exception], cap: str = "") -> Exception:
    return error(f"{where} must be {noun}{span}{cap}, got {show(value)}")


def integer(where: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
            cap: int = INT64_MAX, text: bool = False, error: type[Exception] = NasError) -> int:
    """A whole number in ``[minimum, maximum]`` and at most ``cap``; ``4.0`` counts as 4, ``True`` does not.

    ``maximum`` is the field's own range (always named in the message); ``cap`` an implementation limit,
    named only when the value passes it.
    """
    raw = value = plain(value)
    span = _range(minimum, maximum, False, False)
    if text and isinstance(value, str):
        value = _from_text(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        noun = "a whole number" if not isinstance(value, float) or math.isfinite(value) else "a finite whole number"
        raise _fail(where, noun, span, raw, error)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(where, "a whole number", span, raw, error)
    if value > cap or value < -cap:
        raise _fail(where, "a whole number", span, raw, error, f" and at most {cap:,}" if value > 0 else "")
    return value


def real(where: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
         low_open: bool = False, high_open: bool = False, cap: float = FLOAT_MAX, text: bool = False,
         error: type[Exception] = NasError) -> float:
    """A finite number in the range (``low_open``/``high_open`` exclude the ends) and at most ``cap``."""
    raw = value = plain(value)
    span = _range(minimum, maximum, low_open, high_open)
    if text and isinstance(value, str):
        value = _from_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, "a number", span, raw, error)
    if isinstance(value, int) and abs(value) > cap:  # float() of a 401-digit integer overflows
        outside = (maximum is not None and value > maximum) or (minimum is not None and value < minimum)
        raise _fail(where, "a number", span, raw, error, f" and at most {cap:g}" if value > 0 and not outside else "")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(where, "a finite number", span, raw, error)
    low_bad = minimum is not None and (value <= minimum if low_open else value < minimum)
    high_bad = maximum is not None and (value >= maximum if high_open else value > maximum)
    if low_bad or high_bad:
        raise _fail(where, "a number", span, raw, error)
    if abs(value) > cap:
        raise _fail(where, "a number", span, raw, error, f" and at most {cap:g}" if value > 0 else "")
    return value


def flag(where: str, value: Any, *, error: type[Exception] = NasError) -> bool:
    """``true`` or ``false`` (a numpy bool counts); ``1``, ``'yes'`` and ``None`` do not."""
    value = plain(value)
    if not isinstance(value, bool):
        raise error(f"{where} must be true or false, got {show(value)}")
    return value


def choice(where: str, value: Any, allowed: Iterable[str], *, error: type[Exception] = NasError,
           sep: str = ";") -> str:
    """One of ``allowed`` (strings); a list, a mapping or a number is refused, not hashed."""
    allowed = tuple(allowed)
    value = plain(value)
    if isinstance(value, str) and value in allowed:
        return value
    hint = closest(value, allowed) if isinstance(value, str) else ""
    raise error(f"{where} must be one of {', '.join(allowed)}{sep} got {show(value)}{hint}")


class _FlagError(argparse.ArgumentTypeError):
    """A flag's value refused: argparse prints it after the flag's name (``--threads must be ...``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.strip())


def flag_type(kind: str, *, minimum: float | None = None, maximum: float | None = None,
              cap: float | None = None, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for a numeric flag: the same checks, and argparse names the flag.

    ``kind`` is ``"int"`` or ``"float"``; the flag's text is parsed strictly (``'1e3'`` is a float,
    ``'nan'`` and ``'3.5'`` for an int are refused).
    """

    def parse(text: str) -> Any:
        value: Any = text.strip()
        try:
            value = int(value) if kind == "int" and value.lstrip("+-").isdigit() else float(value)
        except ValueError:
            pass
        if kind == "int":
            return integer("", value, minimum=int(minimum) if minimum is not None else None,
                           maximum=int(maximum) if maximum is not None else None,
                           cap=int(cap or INT64_MAX), error=_FlagError)
        return real("", value, minimum=minimum, maximum=maximum, low_open=low_open, cap=cap or FLOAT_MAX,
                    error=_FlagError)

    parse.__name__ = kind  # argparse's own message for a type error names this
    return parse


def env_number(name: str, raw: str, *, minimum: float, maximum: float, unit: str,
               error: type[Exception] = NasError) -> float:
    """The value of environment variable ``name`` as a finite number in ``(minimum, maximum]``."""
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and minimum < value <= maximum):
        raise error(f"{name} must be a number of {unit}{_range(minimum, maximum, True, False)}, got {show(raw)}")
    return value
