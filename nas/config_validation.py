"""Validation helpers shared by the study and the ablation configs.

A config is validated entirely at load, before anything starts: every message starts with the
config's label (its file name) and names the field, the value and what is allowed. Each config kind
subclasses :class:`Validator` and adds its own ``build`` and field checks; the checks both kinds share
(data spec, training budget, resources per trial, Ray address) are here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, closest
from nas.fields import FLOAT_MAX, INT32_MAX, choice, flag, integer, real, show

__all__ = ["NAME", "Validator"]

MAX_RESOURCE = 1e6  # CPUs or GPUs per trial; the cluster's own count is checked when Ray starts
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a study or ablation name is also a directory and a DB key



def save_path_refusal(value: Any) -> str:
    """Why ``budget.save_path`` has no place in a study, ablation or confirmation (every trial would
    write that one file, wherever it points: another study's ``study.db``, an ablation's ``cells.jsonl``)."""
    return (f"save_path {show(value)} is not allowed here: a study, ablation or confirmation keeps its weights in "
            f"its own folder (keep_checkpoints: pareto or all writes DIR/checkpoints; `nas export DIR --weights FILE` "
            f"copies one out); remove save_path")

class Validator:
    """Field checks that turn a config document's values into validated Python values.

    ``label`` starts every message; ``base_dir`` is where relative paths in the document resolve first.
    """

    def __init__(self, label: str, base_dir: str | Path | None) -> None:
        self.label, self.base_dir = label, Path(base_dir) if base_dir is not None else None

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {message}")

    def mapping(self, where: str, value: Any, known: Sequence[str] | None = None, what: str = "key") -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(f"{where} must be a mapping, got {show(value)}")
        for key in value if known is not None else ():
            if key not in known:
                raise self.error(f"unknown {what} {show(key)} in {where}{closest(str(key), known)}; "
                                 f"known: {', '.join(known)}")
        return dict(value)

    def number(self, where: str, value: Any, *, minimum: float, strict: bool, integer: bool = False,
               maximum: float | None = None, cap: float | None = None) -> Any:
        """A finite number (``integer``: whole) above ``minimum`` (``strict``: ``>``), at most ``maximum``
        (named in every message) and ``cap`` (named when passed); numeric strings such as '5e7' count."""
        if integer:
            return self._integer(where, value, int(minimum) + (1 if strict else 0), maximum, cap)
        return real(where, value, minimum=minimum, low_open=strict, maximum=maximum, cap=cap or FLOAT_MAX, text=True,
                    error=self.error)

    def _integer(self, where: str, value: Any, minimum: int, maximum: float | None, cap: float | None) -> int:
        return integer(where, value, minimum=minimum, maximum=None if maximum is None else int(maximum),
                       cap=int(cap or INT32_MAX), text=True, error=self.error)

    def choice(self, where: str, value: Any, allowed: Sequence[str]) -> str:
        return choice(where, value, allowed, error=self.error)

    def flag(self, where: str, value: Any) -> bool:
        return flag(where, value, error=self.error)

    def data(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"data must be a dataset spec such as mnist5k, cifar10 or cifar10:PATH, got {show(value)}")
        try:
            from nas.data.registry import parse_data_spec
        except ImportError:  # the data package is optional at config time
            return value.strip()
        from nas.errors import DataError

        try:
            parse_data_spec(value)
        except DataError as exc:
            raise self.error(f"data: {exc}") from None
        return value.strip()

    def budget(self, value: Any) -> dict[str, Any]:
        doc = self.mapping("budget", value)
        try:
            from nas.train.config import TrainConfig
        except ImportError:  # pragma: no cover - the trainer validates it when it runs
            return doc
        try:
            TrainConfig.from_dict(doc)
        except ConfigError as exc:
            raise self.error(f"budget: {str(exc).removeprefix('train config: ')}") from None
        if doc.get("save_path") is not None:  # every trial or cell would write the same file (nas.writes)
            raise self.error(f"budget: {save_path_refusal(doc['save_path'])}")
        return doc

    def resources(self, value: Any) -> dict[str, float]:
        doc = self.mapping("resources", value, ("cpu", "gpu"))
        out = {"cpu": self.number("resources.cpu", doc.get("cpu", 1), minimum=0, strict=True, cap=MAX_RESOURCE),
               "gpu": self.number("resources.gpu", doc.get("gpu", 0), minimum=0, strict=False, cap=MAX_RESOURCE)}
        for k, v in out.items():
            if v > 1 and not v.is_integer():  # Ray's rule: fractions only below one unit
                raise self.error(f"resources.{k} above 1 must be a whole number (fractions share one device), "
                                 f"got {v:g}")
        return out

    def ray_address(self, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if text in ("auto", "local") or re.match(r"^(ray://)?[^:/\s]+:\d+$", text):
            return text
        raise self.error(f"ray_address must be null, local, auto, host:port (a cluster's head) or ray://host:port, "
                         f"got {show(value)}")
