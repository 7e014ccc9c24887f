"""A cost cache keyed by genome: a search never counts one architecture twice.

In memory it is a dict; with a path it is also an append-only JSON-lines file in the study directory,
shared by every worker of the study. Each record is written with one ``write`` on a file opened with
``O_APPEND``, so concurrent writers never interleave within a line; a line left unfinished by a worker
that died is closed before the next record. Readers take only complete lines and the last record of a
key wins. Before counting a genome the cache reads whatever other workers appended since it last looked.

Every record carries a checksum of its own content and is checked field by field when read, so an
edited, truncated or foreign line is never used: it is listed in :attr:`CostCache.problems` (which
``nas cost --cache`` and a study's workers print as one warning line), and the genome it would have
answered for is counted again and stored afresh. A warning and a recount rather than an error,
because a study's workers share the file and one bad line must not stop them; the count a search
relies on is always one this cache computed or verified.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nas.cost.flops import COST_FORMAT, CostReport, count_cost
from nas.errors import NasError
from nas.fields import show
from nas.genome.schema import Genome

__all__ = ["CostCache"]


class CostCache:
    """``CostCache(None)``: memory only. ``CostCache(study_dir)``: also ``study_dir/cost_cache.jsonl``.

    A path ending in ``.jsonl`` is used as the file itself. ``hits``/``misses`` count lookups of
    :meth:`get_or_compute` (a miss is one trace).
    """

    FILENAME = "cost_cache.jsonl"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path: Path | None = None
        if path is not None:
            p = Path(path)
            self.path = p if p.suffix == ".jsonl" else p / self.FILENAME
        self._reports: dict[str, CostReport] = {}
        self._offset = 0  # bytes of the file already read
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.problems: list[str] = []  # unusable lines, as "line N: why"
        self._lines = 0  # complete lines already read
        self.refresh()

    # -- disk -----------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Read records appended to the file since the last read; returns how many were read."""
        if self.path is None or not self.path.is_file():
            return 0
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except OSError as exc:
                raise NasError(f"cannot read the cost cache {self.path}: {exc}") from None
            end = data.rfind(b"\n") + 1  # a line still being written is left for the next read
            read, problems = 0, []
            for line in data[:end].splitlines():
                self._lines += 1
                report, problem = _parse(line)
                if report is not None:
                    self._reports[report.key] = report
                    read += 1
                elif problem is not None:
                    problems.append(f"line {self._lines}: {problem}")
            self._offset += end
        self.problems += problems
        return read

    def describe_problems(self, problems: list[str] | None = None) -> str:
        """One line on the unusable records (all of them by default), or ``""`` when there are none."""
        problems = self.problems if problems is None else problems
        if not problems:
            return ""
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        return (f"cost cache {self.path}: {len(problems)} unusable record(s) ({shown}); they are not used and "
                f"their genomes are counted again (delete those lines to silence this)")

    def _append(self, report: CostReport) -> None:
        assert self.path is not None
        record = report.to_dict()
        line = (json.dumps({**record, "checksum": _checksum(record)}, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a worker died mid-line: start afresh
                    line = b"\n" + line
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise NasError(f"cannot write the cost cache {self.path}: {exc}") from None

    # -- lookups --------------------------------------------------------------------------------
    def get(self, key: str) -> CostReport | None:
        """The cached report for a genome key, looking at the file again on a memory miss."""
        report = self._reports.get(key)
        if report is None and self.path is not None:
            self.refresh()
            report = self._reports.get(key)
        return report

    def put(self, report: CostReport) -> None:
        """Remember ``report`` (and append it to the file). Reports of no genome (key "") are not kept."""
        if not report.key:
            return
        with self._lock:
            self._reports[report.key] = report
        if self.path is not None:
            self._append(report)

    def get_or_compute(
        self,
        genome: Genome | str | Path | Mapping[str, Any],
        compute: Callable[[Genome], CostReport] = count_cost,
    ) -> CostReport:
        """The cost of ``genome``: from the cache if any worker counted it, else counted once and stored."""
        from nas.genome import load_genome

        g = genome if isinstance(genome, Genome) else load_genome(genome)
        report = self.get(g.key)
        if report is not None:
            self.hits += 1
            return report
        self.misses += 1
        report = compute(g)
        if report.key != g.key:  # a compute function may return a report of a plain module
            report = CostReport.from_dict({**report.to_dict(), "key": g.key})
        self.put(report)
        return report

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._reports)

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        return f"CostCache({where}, {len(self)} reports, {self.hits} hits, {self.misses} misses)"


def _checksum(record: Mapping[str, Any]) -> str:
    text = json.dumps({k: v for k, v in record.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_KEY = re.compile(r"^[0-9a-f]{12}$")
_COUNTS = ("params", "trainable_params", "flops", "image_size")
_TABLES = ("params_by_stage", "flops_by_stage", "flops_by_operator", "unsupported_ops")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _parse(line: bytes) -> tuple[CostReport | None, str | None]:
    """One record, or ``None`` and why it cannot be used (``None`` too for a blank line)."""
    if not line.strip():
        return None, None
    try:
        doc = json.loads(line)
    except ValueError:
        return None, "not a JSON record (cut short or edited)"
    if not isinstance(doc, dict):
        return None, "not a JSON record (cut short or edited)"
    key = doc.get("key")
    about = f" (key {key})" if isinstance(key, str) and _KEY.match(key) else ""
    if doc.get("format") != COST_FORMAT:
        return None, f"counted by cost format {show(doc.get('format'))}, not {COST_FORMAT}{about}"
    if doc.get("checksum") != _checksum(doc):
        what = "has no checksum" if "checksum" not in doc else "does not match its checksum"
        return None, f"{what}{about}: edited or corrupt"
    bad = [f for f in _COUNTS if not _count(doc.get(f))]
    bad += [f for f in _TABLES if not isinstance(doc.get(f), dict) or not all(
        isinstance(k, str) and _count(v) for k, v in doc[f].items())]
    if not about or bad:
        return None, f"field {bad[0] if bad else 'key'} is not a valid count{about}"
    try:
        return CostReport.from_dict(doc), None
    except (ValueError, TypeError) as exc:
        return None, f"not a cost record{about}: {exc}"
