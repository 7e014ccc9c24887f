"""The priority of the processes that train a study's trials.

Ray starts its worker processes at nice 15 by default (``worker_niceness`` in Ray's config), so on a
shared machine a study's trainings yield to almost anything else, and an identical study can take
twice as long as the same loop run in one process. A study's trials are its main work: `nas` starts
its local Ray with the workers at the driver's own priority (``RAY_worker_niceness=0``: Ray adds
nothing to the niceness the workers inherit). To keep Ray's default, or choose another value, set the
variable yourself before the run (``RAY_worker_niceness=15 nas study run ...``): it is left as it is.
A cluster started with ``ray start`` takes the variable from the environment of that command.
"""
from __future__ import annotations

import os

__all__ = ["NICENESS_ENV", "DEFAULT_NICENESS", "worker_niceness_env"]

NICENESS_ENV = "RAY_worker_niceness"  # ray._private.ray_constants.RAY_WORKER_NICENESS (Ray 2.x)
DEFAULT_NICENESS = 0  # added to the niceness a worker inherits: 0 keeps the driver's priority


def worker_niceness_env() -> dict[str, str]:
    """The environment a local Ray must start with so that trials run at the chosen priority;
    empty when the user already chose a value."""
    if NICENESS_ENV in os.environ:
        return {}
    return {NICENESS_ENV: str(DEFAULT_NICENESS)}
