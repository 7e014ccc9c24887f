"""Resources checked against the cluster; Ctrl+C and a full disk end in one line after a full clean-up."""
from __future__ import annotations

import errno
from typing import Any

import pytest

from nas.errors import ConfigError, NasError
from nas.search.guard import as_user_error, check_cluster_resources, fit_guarded


def test_resources_beyond_the_cluster_are_refused() -> None:
    cluster = {"CPU": 2.0, "memory": 1e9}
    check_cluster_resources({"cpu": 2, "gpu": 0}, cluster)
    with pytest.raises(ConfigError, match=r"resources\.gpu 1: the Ray cluster has 0 GPU\(s\) .*--set resources\.gpu=0"):
        check_cluster_resources({"cpu": 1, "gpu": 1}, cluster)
    with pytest.raises(ConfigError, match=r"resources\.cpu 4: the Ray cluster has 2 CPU\(s\)"):
        check_cluster_resources({"cpu": 4}, cluster, what="a cell")


def _disk_full(path: str = "/runs/s/trials.csv") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path)


def test_an_interrupt_runs_every_cleanup_step_then_says_how_to_resume() -> None:
    done: list[str] = []

    def fit() -> None:
        raise KeyboardInterrupt

    def failing_step() -> None:
        done.append("requeue")
        raise _disk_full("/runs/s/study.db")

    with pytest.raises(KeyboardInterrupt, match="3 finished; resume with it"):
        fit_guarded(fit, [failing_step, lambda: done.append("csv"), lambda: done.append("ray")],
                    lambda: "3 finished; resume with it")
    assert done == ["requeue", "csv", "ray"]


def test_a_full_disk_is_one_line_naming_the_file_even_when_the_cleanup_fails_too() -> None:
    def fit() -> None:
        raise RuntimeError("Tune callback failed") from _disk_full()

    def cleanup() -> None:
        raise _disk_full("/runs/s/study.db")

    with pytest.raises(NasError, match=r"^cannot use /runs/s/trials\.csv: the disk is full; free some space") as info:
        fit_guarded(fit, [cleanup], lambda: "")
    assert "\n" not in str(info.value)
    with pytest.raises(NasError, match=r"cannot use /runs/s/study\.db: the disk is full"):
        fit_guarded(lambda: None, [cleanup], lambda: "")


def test_sqlite_disk_full_and_other_errors() -> None:
    class OperationalError(Exception):
        pass

    err = as_user_error(OperationalError("(sqlite3.OperationalError) database or disk is full"), "/r/s/study.db")
    assert isinstance(err, NasError) and str(err).startswith("cannot write /r/s/study.db: the disk is full")
    assert as_user_error(ValueError("a bug")) is None
    with pytest.raises(ValueError, match="a bug"):  # programming errors keep their traceback
        fit_guarded(lambda: (_ for _ in ()).throw(ValueError("a bug")), [], lambda: "")
    result: Any = fit_guarded(lambda: 42, [], lambda: "")
    assert result == 42
