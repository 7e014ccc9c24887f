"""The typed values of the commands' numeric flags: the checks of :mod:`nas.fields`, as argparse types.

A refused value is one line naming the flag (``--threads must be a whole number >= 1, got 0``); the
bounds are the ones the same value has in a genome, a training config or a study config.
"""
from __future__ import annotations

from nas.fields import INT32_MAX, SEED_MAX, flag_type

__all__ = ["IMAGE_SIZE", "CLASSES", "BATCH", "COUNT", "ANY_COUNT", "EPOCHS", "SECONDS", "RATE", "SEED", "THREADS",
           "RUNS"]

IMAGE_SIZE = flag_type("int", minimum=1, cap=INT32_MAX)  # as a genome's image_size
CLASSES = flag_type("int", minimum=2, cap=INT32_MAX)  # as a genome's num_classes
BATCH = flag_type("int", minimum=1, cap=INT32_MAX)  # images in a batch; the size guard checks that they fit
COUNT = flag_type("int", minimum=1, cap=INT32_MAX)  # images of a subset
ANY_COUNT = flag_type("int", cap=INT32_MAX)  # a count whose lower bound the command states itself
EPOCHS = flag_type("int", minimum=1, cap=10**6)  # as TrainConfig.epochs
SECONDS = flag_type("float", minimum=0, low_open=True, cap=1e9)  # as TrainConfig.seconds
RATE = flag_type("float", minimum=0, low_open=True)  # a learning rate: finite and > 0
SEED = flag_type("int", minimum=0, maximum=SEED_MAX)  # numpy's and Optuna's seeds are below 2**32
THREADS = flag_type("int", minimum=1, cap=1024)  # torch CPU threads


def RUNS(minimum: int) -> object:  # noqa: N802 - reads like the other flag types
    """Warm-up (``RUNS(0)``) or timed runs (``RUNS(1)``) of a measurement."""
    return flag_type("int", minimum=minimum, cap=10**6)
