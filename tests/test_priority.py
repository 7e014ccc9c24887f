"""Trials run at the driver's priority: a local Ray's workers are not left at Ray's nice 15."""
from __future__ import annotations

import os

import pytest

from nas.search.priority import NICENESS_ENV, worker_niceness_env


def test_a_users_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NICENESS_ENV, "15")
    assert worker_niceness_env() == {}
    monkeypatch.delenv(NICENESS_ENV)
    assert worker_niceness_env() == {NICENESS_ENV: "0"}


def test_workers_run_at_the_drivers_niceness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start a local Ray as a study does and read the niceness back from a running task and actor."""
    import ray

    from nas.search.runner import init_ray

    if ray.is_initialized():
        pytest.skip("a Ray started elsewhere in this process decides its own workers' niceness")
    monkeypatch.delenv(NICENESS_ENV, raising=False)
    try:
        assert init_ray(None) is True

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
