"""Trials run at the driver's priority: a local Ray's workers are not left at Ray's nice 15."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nas.search.priority import NICENESS_ENV, worker_niceness_env
from nas.search.startup import PRESTART_ENV, no_prestart_env


def test_a_users_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NICENESS_ENV, "15")
    assert worker_niceness_env() == {}
    monkeypatch.delenv(NICENESS_ENV)
    assert worker_niceness_env() == {NICENESS_ENV: "0"}
    monkeypatch.setenv(PRESTART_ENV, "1")
    assert no_prestart_env() == {}
    monkeypatch.delenv(PRESTART_ENV)
    assert no_prestart_env() == {PRESTART_ENV: "0"}


def _idle_workers() -> list[int]:
    """Pids of the idle Python workers of this process's local Ray: children of its raylet (found by the
    raylet socket that ``ray.nodes()`` names) titled ``ray::IDLE``."""
    import ray

    socket = ray.nodes()[0]["RayletSocketName"]
    procs = {}
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text()
            procs[int(d.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), (d / "cmdline").read_bytes().decode())
        except (OSError, ValueError):
            continue
    raylets = {pid for pid, (_, cmd) in procs.items() if socket in cmd and "raylet" in cmd.split("\0")[0]}
    assert raylets, "no raylet found for this Ray"
    return [pid for pid, (ppid, cmd) in procs.items() if ppid in raylets and cmd.startswith("ray::IDLE")]


def test_workers_run_at_the_drivers_niceness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start a local Ray as a study does and read the niceness back from a running task and actor; no
    idle workers are started for tasks before one is sent (trials run in actors, which never use them)."""
    import ray

    from nas.search.runner import init_ray

    if ray.is_initialized():
        pytest.skip("a Ray started elsewhere in this process decides its own workers' niceness")
    monkeypatch.delenv(NICENESS_ENV, raising=False)
    monkeypatch.delenv(PRESTART_ENV, raising=False)
    try:
        assert init_ray(None) is True
        time.sleep(3)  # Ray's idle workers, when it starts them, are up within a second of the driver
        assert _idle_workers() == []

        @ray.remote(num_cpus=0)
        def niceness() -> int:
            return os.nice(0)

        @ray.remote(num_cpus=0)
        class Worker:
            def niceness(self) -> int:
                return os.nice(0)

        driver = os.nice(0)
        assert ray.get(niceness.remote()) == driver
        assert ray.get(Worker.remote().niceness.remote()) == driver  # trials run in actors
    finally:
        ray.shutdown()
        os.environ.pop(NICENESS_ENV, None)
        os.environ.pop(PRESTART_ENV, None)
