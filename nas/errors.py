"""One error type for everything a user can get wrong.

Every message names the field (or file), the value that was given and what is allowed, so the CLI can
print it as it is and exit non-zero without a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["NasError", "GenomeError", "ConfigError", "DataError", "TrainingDiverged", "closest", "os_error_message"]


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
    """Return ``"; did you mean 'x'?"`` for the closest known spelling, or ``""``.

    Look-alike characters come first: ``coatnet_O`` (letter O) means ``coatnet_0``, which plain
    edit distance ties with ``coatnet_2``.
    """
    word = str(word)
    if len(word) > 64:  # a pasted paragraph is no typo, and difflib is quadratic in it
        return ""
    choices = sorted(choices)
    lookalike = str.maketrans("oOilI", "00111")
    folded = {c.translate(lookalike).lower(): c for c in choices}
    same = folded.get(str(word).translate(lookalike).lower())
    if same is not None and same != word:
        return f"; did you mean '{same}'?"
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


_OS_ADVICE = {
    "ENOSPC": "the disk is full; free some space and run the same command again (finished work is kept)",
    "EDQUOT": "the disk quota is exceeded; free some space and run the same command again (finished work is kept)",
    "EROFS": "the file system is read-only; choose a writable folder",
    "EACCES": "permission denied; choose a folder you may write to",
    "EPERM": "permission denied; choose a folder you may write to",
    "ENAMETOOLONG": "the name is too long; a file name may have at most 255 bytes",
    "EISDIR": "it is a directory; give a file path",
    "ENOTDIR": "a part of the path is a file, not a directory",
}


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError`` from the file system: the file, what went wrong and what to do."""
    import errno as _errno

    name = _errno.errorcode.get(exc.errno or 0, "")
    where = exc.filename if exc.filename is not None else "a file"
    text = str(where)
    if len(text) > 80:
        text = f"{text[:40]}...{text[-20:]} ({len(text):,} characters)"
    what = _OS_ADVICE.get(name, exc.strerror or type(exc).__name__)
    return f"cannot use {text}: {what}"
