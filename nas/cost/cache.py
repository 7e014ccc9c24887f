"""A cost cache keyed by genome: a search never counts one architecture twice.

In memory it is a dict; with a path it is also an append-only JSON-lines file in the study directory,
shared by every worker of the study. Each record is written with one ``write`` on a file opened with
``O_APPEND``, so concurrent writers never interleave within a line; a line left unfinished by a worker
that died is closed before the next record. Readers take only complete lines, skip lines they cannot
parse, and the last record of a key wins. Before counting a genome the cache
reads whatever other workers appended since it last looked.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nas.cost.flops import COST_FORMAT, CostReport, count_cost
from nas.errors import NasError
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
            read = 0
            for line in data[:end].splitlines():
                report = _parse(line)
                if report is not None:
                    self._reports[report.key] = report
                    read += 1
            self._offset += end
        return read

    def _append(self, report: CostReport) -> None:
        assert self.path is not None
        line = (json.dumps({**report.to_dict()}, separators=(",", ":")) + "\n").encode()
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


def _parse(line: bytes) -> CostReport | None:
    """One record, or ``None`` for a torn, foreign or older-format line."""
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict) or doc.get("format") != COST_FORMAT or not doc.get("key"):
            return None
        return CostReport.from_dict(doc)
    except (ValueError, TypeError):
        return None
