"""Short supervised trainings: the recipe (:class:`TrainConfig`), :func:`train` and its result."""
from nas.train.config import TrainConfig
from nas.train.schedule import warmup_cosine
from nas.train.trainer import NO_DECAY_NAMES, TrainResult, evaluate, param_groups, train

__all__ = ["NO_DECAY_NAMES", "TrainConfig", "TrainResult", "evaluate", "param_groups", "train", "warmup_cosine"]
