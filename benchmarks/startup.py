"""Where a study's time to its first result goes, and what starting Ray differently would gain.

Two measurements:

- ``ray.init`` alone, as a study starts a local Ray (``address="local"``, no dashboard, no idle task
  workers), in a fresh process on a quiet machine: the call's duration, and the two waits inside it on
  Ray's own processes: the API server publishing its address (``services.start_api_server``) and
  the raylet registering its node with the GCS (``services.get_node``, polled by ``Node.__init__``).
- The quickstart (``--set n_trials=4``, its first trials are the same as the full study's) with
  ``--profile``, per seed, in three ways of starting Ray:

  - ``local``: as a user runs it; Ray starts on a thread once the config and space are read;
  - ``ray-first``: an experiment, not a mode of ``nas``: Ray starts on a thread before anything
    else is imported (before torch), and the study uses it (``nas.search.runner.init_ray`` is
    replaced, in that process only, by a wait for it);
  - ``cluster``: a Ray started beforehand with ``ray start --head`` (not timed), the study
    connecting with ``--set ray_address=auto``: Ray's start off the path entirely.

  Printed per mode and seed: Ray up, the first trials scheduled (driver ready) and the first full
  result, seconds from the process's start (the ``--profile`` marks); then the median over seeds.

    python benchmarks/startup.py                      # seeds 0-3, every mode; about 5 minutes
    python benchmarks/startup.py --seeds 0 --modes local cluster
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("local", "ray-first", "cluster")
MARKS = {"ray_up": "Ray is up", "ready": "driver ready", "first": "first full result"}

# A child process: ray.init timed, with its two waits on Ray's own processes.
_RAY_INIT = """
import json, os, time
os.environ["RAY_prestart_worker_first_driver"] = "0"
import ray
from ray._private import services
waits = {"api_server": 0.0, "node_registered": 0.0}
def timed(name, fn):
    def call(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            waits[name] += time.perf_counter() - t
    return call
services.start_api_server = timed("api_server", services.start_api_server)
services.get_node = timed("node_registered", services.get_node)
t = time.perf_counter()
ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
total = time.perf_counter() - t
ray.shutdown()
print(json.dumps({"init": total, **waits}))
"""

# A child process: Ray started on a thread first, then the CLI (the `ray-first` experiment).
_RAY_FIRST = """
import os, sys, threading
os.environ.update({"RAY_worker_niceness": "0", "RAY_prestart_worker_first_driver": "0"})
up, hold = threading.Event(), threading.Event()
def start():
    import ray
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    up.set()
    hold.wait()  # Ray's processes live as long as the thread that started them
threading.Thread(target=start, daemon=True).start()
import nas.search.runner as runner
def init_ray(address):
    runner.quiet_tune()
    up.wait()
    return False
runner.init_ray = init_ray
sys.argv = ["nas", *sys.argv[1:]]
from nas.cli.main import main
try:
    main()
finally:
    import ray
    ray.shutdown()
    hold.set()
"""


def ray_init_alone(repeats: int, env: dict[str, str]) -> list[dict[str, float]]:
    out = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _RAY_INIT], env=env, capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def study_marks(mode: str, seed: int, env: dict[str, str], work: Path) -> dict[str, float]:
    out = work / f"{mode}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    args = ["study", "run", "quickstart", "--profile", "--out", str(out), "--set", "n_trials=4", "--set", f"seed={seed}"]
    if mode == "cluster":
        args += ["--set", "ray_address=auto"]
    cmd = [sys.executable, "-c", _RAY_FIRST, *args] if mode == "ray-first" else [sys.executable, "-m", "nas", *args]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} seed {seed} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    marks: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"profile\s+([\d.]+) s\s+\(\+\s*[\d.]+\)\s+(.*)", line)
        for key, text in MARKS.items():
            if m and m.group(2).startswith(text):
                marks[key] = float(m.group(1))
    return marks


def _ray(*args: str, env: dict[str, str]) -> None:
    subprocess.run(["ray", *args], env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--repeats", type=int, default=3, help="ray.init alone: how many fresh processes")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    inits = ray_init_alone(args.repeats, env)
    print("ray.init alone (local, no dashboard), seconds:")
    for key in ("init", "api_server", "node_registered"):
        print(f"  {key:<16} " + "  ".join(f"{r[key]:.2f}" for r in inits))

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory(prefix="nas-startup-") as tmp:
        for seed in args.seeds:  # seed-major: the modes of one seed run back to back
            for mode in args.modes:
                if mode == "cluster":  # started and stopped around the run, not timed
                    _ray("start", "--head", "--num-cpus", str(os.cpu_count() or 1), "--include-dashboard=false",
                         env={**env, "RAY_worker_niceness": "0"})
                try:
                    marks = study_marks(mode, seed, env, Path(tmp))
                finally:
                    if mode == "cluster":
                        _ray("stop", "--force", env=env)
                results[mode].append({"seed": seed, **marks})
                print(f"  seed {seed} {mode:<10} " + "  ".join(f"{k} {marks.get(k, float('nan')):5.2f}" for k in MARKS),
                      flush=True)

    print(f"\nmedians over seeds {args.seeds}, seconds from the process's start:")
    print(f"{'mode':<10} " + " ".join(f"{k:>8}" for k in MARKS))
    for mode, rows in results.items():
        print(f"{mode:<10} " + " ".join(f"{statistics.median(r.get(k, float('nan')) for r in rows):8.2f}"
                                         for k in MARKS))


if __name__ == "__main__":
    main()
