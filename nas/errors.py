"""One error type for everything a user can get wrong.

Every message names the field (or file), the value that was given and what is allowed, so the CLI can
print it as it is and exit non-zero without a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["NasError", "GenomeError", "ConfigError", "DataError", "TrainingDiverged", "closest"]


class NasError(ValueError):
    """Base class of every error caused by user input (bad genome, config, data path, rule...)."""


class GenomeError(NasError):
    """A genome document is malformed or describes an impossible network."""


class ConfigError(NasError):
    """A study, search-space or ablation config is malformed."""


class DataError(NasError):
    """A dataset is missing, corrupt, or does not fit the genome."""


class TrainingDiverged(NasError):
    """The training loss became NaN or infinite."""


def closest(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest known spelling, or ``""``."""
    match = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""
