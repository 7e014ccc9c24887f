"""Study-wide bookkeeping shared by every driver of one study, in the study's own database.

Optuna's tables say what each trial is; two small tables of ours add what several drivers must agree
on and Optuna cannot express atomically:

- ``nas_key_claims``: one row per architecture key, naming the trial that trains it. A driver claims
  a key with an ``INSERT`` that the primary key makes atomic, so no architecture is ever trained by
  two drivers at once or twice in a study; a driver that samples a claimed key reuses the owner's
  result. A key that failed is reused as a failure unless ``retry_failed`` hands the claim over
  (a compare-and-swap ``UPDATE``). A driver that dies releases nothing, so its claims are released
  when its trials are found stale by the heartbeat (:func:`requeue_stale`).
- ``nas_drivers``: one row per driver start; its rank among the study's rows gives each driver a
  distinct sampler seed, so drivers started together do not propose the same architectures.
"""
from __future__ import annotations

import os
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

__all__ = ["Claim", "KeyClaims", "requeue_stale", "engine_of"]

_META = sa.MetaData()
CLAIMS = sa.Table(
    "nas_key_claims", _META,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running | done
    sa.Column("host", sa.String(256)),
    sa.Column("pid", sa.Integer),
)
DRIVERS = sa.Table(
    "nas_drivers", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(512), nullable=False, index=True),
    sa.Column("host", sa.String(256)),
    sa.Column("pid", sa.Integer),
    sa.Column("started", sa.Float),
)


def engine_of(storage: Any) -> sa.engine.Engine:
    """The SQLAlchemy engine behind an Optuna RDB storage (``study._storage`` wraps it in a cache)."""
    return getattr(storage, "_backend", storage).engine


@dataclass(frozen=True)
class Claim:
    key: str
    trial_id: int
    state: str


class KeyClaims:
    """The key claims and driver registry of study ``study`` in the database behind ``engine``."""

    def __init__(self, engine: sa.engine.Engine, study: str) -> None:
        self.engine, self.study = engine, study
        for attempt in range(5):  # drivers started together race on CREATE TABLE: the loser retries
            try:
                _META.create_all(engine, checkfirst=True)
                break
            except (IntegrityError, OperationalError, ProgrammingError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune pickles the searcher that holds the claims
        return {"url": self.engine.url.render_as_string(hide_password=False), "study": self.study}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.engine, self.study = sa.create_engine(state["url"]), state["study"]

    @contextmanager
    def budget_lock(self) -> Iterator[None]:
        """Serialise "count the study's trials, then ask a new one" across drivers, so that two drivers
        seeing one free slot cannot both fill it: a PostgreSQL advisory lock (one per study), an
        ``fcntl`` lock next to an SQLite file; other databases go without (a rare extra trial)."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            lock_id = zlib.crc32(f"nas-budget:{self.study}".encode())
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                    conn.commit()
        elif dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            import fcntl

            with open(f"{self.engine.url.database}.budget-lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        else:
            yield

    def register_driver(self) -> int:
        """Record this driver's start; returns its rank (0 for the study's first driver start)."""
        with self.engine.begin() as conn:
            new_id = conn.execute(DRIVERS.insert().values(
                study=self.study, host=socket.gethostname(), pid=os.getpid(), started=time.time())).inserted_primary_key[0]
            return int(conn.execute(sa.select(sa.func.count()).select_from(DRIVERS).where(
                DRIVERS.c.study == self.study, DRIVERS.c.id < new_id)).scalar_one())

    def claim(self, key: str, trial_id: int) -> Claim:
        """Claim ``key`` for ``trial_id``; returns the claim that holds (ours when ``trial_id`` matches)."""
        for _ in range(10):
            try:
                with self.engine.begin() as conn:
                    conn.execute(CLAIMS.insert().values(study=self.study, key=key, trial_id=trial_id, state="running",
                                                        host=socket.gethostname(), pid=os.getpid()))
                return Claim(key, trial_id, "running")
            except IntegrityError:
                held = self.get(key)
                if held is not None:  # else released between our INSERT and SELECT: try again
                    return held
        raise RuntimeError(f"could not claim architecture {key}: its claim keeps changing")

    def get(self, key: str) -> Claim | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(CLAIMS.c.trial_id, CLAIMS.c.state).where(
                CLAIMS.c.study == self.study, CLAIMS.c.key == key)).first()
        return None if row is None else Claim(key, int(row[0]), str(row[1]))

    def take_over(self, key: str, old_trial_id: int, trial_id: int) -> bool:
        """Hand the claim of ``key`` from ``old_trial_id`` to ``trial_id``; False if someone else did first."""
        with self.engine.begin() as conn:
            done = conn.execute(CLAIMS.update().where(
                CLAIMS.c.study == self.study, CLAIMS.c.key == key, CLAIMS.c.trial_id == old_trial_id,
            ).values(trial_id=trial_id, state="running", host=socket.gethostname(), pid=os.getpid()))
        return done.rowcount == 1

    def finish(self, key: str, trial_id: int) -> None:
        """Mark the claim of ``key`` done: its trial has been told, its outcome is in the storage."""
        with self.engine.begin() as conn:
            conn.execute(CLAIMS.update().where(
                CLAIMS.c.study == self.study, CLAIMS.c.key == key, CLAIMS.c.trial_id == trial_id).values(state="done"))

    def release(self, trial_ids: Any) -> None:
        """Drop the claims of trials that will not finish (re-queued): their keys may be claimed again."""
        ids = [int(t) for t in trial_ids]
        if ids:
            with self.engine.begin() as conn:
                conn.execute(CLAIMS.delete().where(CLAIMS.c.study == self.study, CLAIMS.c.trial_id.in_(ids)))


def requeue_stale(study: Any, trial: Any) -> None:
    """Heartbeat callback for a trial whose driver died: release its claim and queue its parameters again.

    Optuna has already marked the trial FAIL; :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` adds
    a WAITING copy (``failed_trial`` names the original), which the next ``ask()`` of any live driver
    runs. :func:`nas.search.storage.finished_count` does not count the stale original.
    """
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    KeyClaims(engine_of(study._storage), study.study_name).release([trial._trial_id])
    with warnings.catch_warnings():  # experimental in Optuna; chosen knowingly
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)
