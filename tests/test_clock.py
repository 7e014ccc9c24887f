"""The study's clock counts from the command's start; Ray's start-up runs on a thread that stays."""
from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.search.clock import StartupProfile, command_start, since_start
from nas.search.startup import BackgroundRay


def test_the_clock_starts_with_the_process_not_with_its_imports() -> None:
    code = ("import time; time.sleep(1.0); t = time.time(); from nas.search.clock import command_start; "
            "print(t - command_start(), command_start())")
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    waited, started = map(float, out.stdout.split())
    assert 1.0 <= waited < 60  # the second slept before the import is on the clock
    assert launched - 0.05 <= started <= launched + 5  # to a clock tick, not to a whole second of boot time
    assert command_start() <= time.time() and since_start() >= 0


def test_profile_lines_are_in_time_order_with_the_trials_marks() -> None:
    profile = StartupProfile()
    profile.mark("driver step")
    out = io.StringIO()
    profile.report({"ignored": "text"}, out=out)
    assert out.getvalue() == ""  # off unless --profile
    profile.enabled = True
    profile.report({"worker step": command_start() + 1e6}, out=out)
    lines = out.getvalue().splitlines()
    assert [ln.split("  ")[-1] for ln in lines] == ["driver step", "worker step"]
    assert all(ln.startswith("profile") for ln in lines)


def test_background_start_returns_its_result_and_keeps_its_thread_until_released() -> None:
    calls = []
    start = BackgroundRay(lambda init, address, resources: calls.append((address, dict(resources))) or True,
                          lambda address: True, "local", {"cpu": 1}).start()
    assert start.join() is True and calls == [("local", {"cpu": 1})]
    assert start._thread.is_alive()  # Ray's processes die with the thread that started them
    start.release()
    start._thread.join(timeout=5)
    assert not start._thread.is_alive()


def test_background_start_raises_its_error_in_the_caller() -> None:
    def refuse(init, address, resources):  # noqa: ANN001, ANN202
        raise ValueError("resources.cpu 9: the Ray cluster has 2 CPU(s)")

    start = BackgroundRay(refuse, lambda address: True, None, {}).start()
    with pytest.raises(ValueError, match="resources.cpu 9"):
        start.join()
    start._thread.join(timeout=5)
    assert not start._thread.is_alive()


def test_tune_telemetry_imports_are_done_before_the_fit() -> None:
    """Ray Tune's callback telemetry in ``Tuner.fit`` imports logger integrations (MLflow: 0.75 s);
    after :func:`import_tune_telemetry` (run while Ray starts) it imports nothing more."""
    code = ("import sys; from nas.search.startup import import_tune_telemetry; import_tune_telemetry(); "
            "from ray.tune.logger import JsonLoggerCallback; from ray.air._internal.usage import _count_callbacks; "
            "before = set(sys.modules); _count_callbacks([JsonLoggerCallback()]); "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_default_study_gives_tune_no_callbacks_so_its_telemetry_imports_nothing(tmp_path) -> None:
    """A callback list that is not empty makes ``Tuner.fit`` import Tune's MLflow, W&B, Comet and Aim
    modules for its usage statistics (0.75 s with MLflow installed, on the way to the first result).
    A study passes callbacks only for the checkpoints it keeps and the trackers it logs to."""
    from nas.search.config import load_study_config
    from nas.search.runner import _tune_callbacks, _wants_tune_callbacks

    quickstart = str(Path(__file__).resolve().parents[1] / "nas" / "configs" / "studies" / "quickstart.yaml")
    plain = load_study_config(quickstart)
    assert not _wants_tune_callbacks(plain) and _tune_callbacks(plain, tmp_path, {}) == []
    kept = load_study_config(quickstart, ["keep_checkpoints=pareto"])
    assert _wants_tune_callbacks(kept) and len(_tune_callbacks(kept, tmp_path, {})) == 1
    logged = load_study_config(quickstart, ["logging=[tensorboard]"])
    assert _wants_tune_callbacks(logged) and len(_tune_callbacks(logged, tmp_path, {})) == 1
    code = ("import sys; from nas.search.config import load_study_config; "
            "from nas.search.runner import _tune_callbacks; from ray.air._internal.usage import tag_callbacks; "
            f"callbacks = _tune_callbacks(load_study_config({quickstart!r}), '.', {{}}); "
            "before = set(sys.modules); tag_callbacks(callbacks); "
            "print(sorted(m for m in set(sys.modules) - before if 'mlflow' in m or 'integrations' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
