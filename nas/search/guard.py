"""What stands between a running study (or ablation) and the things that stop it from outside.

- **Resources that do not exist.** Ray queues a trial that asks for more than the cluster has and
  waits forever ("cluster only has 0 GPUs"); :func:`start_ray_checked` compares the request with
  ``ray.cluster_resources()`` right after Ray starts and refuses it in one line.
- **Ctrl+C.** Ray Tune's own SIGINT handler finishes the experiment "gracefully", prints advice to
  call ``Tuner.restore(...)`` (which is not how a study resumes) and returns as if the run had ended.
  :func:`fit_guarded` turns its handler off so the interrupt reaches us at once, runs the clean-up
  (re-queue the interrupted trials, write ``trials.csv``, stop Ray), and raises a
  :class:`KeyboardInterrupt` whose text says what finished and how to resume; the CLI prints it as one
  line and exits 130.
- **A full disk** (or any file-system refusal) while the run writes: one line naming the file and
  what to do, and a clean-up step that fails for the same reason does not hide it under a traceback
  (the next resume re-queues whatever is left RUNNING).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from nas.errors import ConfigError, NasError, os_error_message

__all__ = ["check_cluster_resources", "quiet_ray_notices", "start_ray_checked", "fit_guarded", "as_user_error"]

T = TypeVar("T")
_RAY_KEYS = {"cpu": "CPU", "gpu": "GPU"}


def check_cluster_resources(resources: Mapping[str, Any], available: Mapping[str, float], what: str = "a trial") -> None:
    """Raise :class:`ConfigError` when one trial asks for more CPUs or GPUs than the whole cluster has."""
    for name, key in _RAY_KEYS.items():
        want = float(resources.get(name, 1 if name == "cpu" else 0))
        have = float(available.get(key, 0.0))
        if want > have:
            raise ConfigError(
                f"resources.{name} {want:g}: the Ray cluster has {have:g} {key}(s) in all, so {what} could never "
                f"start; lower it (e.g. --set resources.{name}={int(have) if have.is_integer() else have:g})"
            )


def quiet_ray_notices() -> None:
    """Ray announces on every local start that it enabled token authentication (it stays enabled);
    the notice is about Ray's defaults, not the run, and would be the only line on stderr."""
    import logging

    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def start_ray_checked(init_ray: Callable[[str | None], bool], address: str | None, resources: Mapping[str, Any],
                      what: str = "a trial") -> bool:
    """``init_ray(address)``, then :func:`check_cluster_resources`; Ray started here is stopped on refusal."""
    import ray

    from nas import signals
    from nas.reach import probe_ray_address

    quiet_ray_notices()
    probe_ray_address(address)  # an address nothing answers at fails in seconds, not after Ray's minutes of retries
    started = init_ray(address)
    signals.reinstall()  # ray.init replaces the driver's SIGTERM handler with sys.exit(15)
    try:
        check_cluster_resources(resources, ray.cluster_resources(), what)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return started


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 20:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def as_user_error(exc: BaseException, database: str | None = None) -> NasError | None:
    """One-line :class:`NasError` for a file-system failure somewhere in ``exc``'s chain, else ``None``.

    SQLite reports a full disk as ``OperationalError: database or disk is full`` (not an ``OSError``),
    and Ray wraps the errors of its callbacks, so the whole chain is searched.
    """
    for link in _chain(exc):
        if isinstance(link, NasError):
            return link
        if isinstance(link, OSError) and not isinstance(link, (BrokenPipeError, ConnectionError, TimeoutError)):
            return NasError(os_error_message(link))
        text = str(link)
        if type(link).__name__ == "OperationalError" and ("disk is full" in text or "disk I/O error" in text):
            from nas.writes import free_space

            where = database or "the study database"
            return NasError(f"cannot write {where}: the disk is full ({free_space(where) if database else 'unknown'} "
                            f"free); free some space and resume (finished trials are kept, the interrupted ones are "
                            f"queued again)")
    return None


class _UserErrorsSpeakOnce(logging.Filter):
    """Drops Ray Tune's own tracebacks of a failure that :func:`fit_guarded` reports as one line
    (a full disk inside a searcher callback is logged as "Error stopping trial" once per trial)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or as_user_error(exc) is None


@contextmanager
def _quiet_user_errors() -> Iterator[None]:
    quiet = _UserErrorsSpeakOnce()
    loggers = [logging.getLogger(n) for n in ("ray", "ray.tune", "ray.tune.execution.tune_controller", "ray.train")]
    handlers = {h for lg in [*loggers, logging.getLogger()] for h in lg.handlers}
    for item in (*loggers, *handlers):
        item.addFilter(quiet)
    try:
        yield
    finally:
        for item in (*loggers, *handlers):
            item.removeFilter(quiet)


def fit_guarded(fit: Callable[[], T], cleanup: list[Callable[[], Any]], interrupted: Callable[[], str],
                database: str | None = None) -> T:
    """Run ``fit`` (a Tuner's ``fit``) with Ctrl+C and a full disk handled; see the module docstring.

    Every ``cleanup`` step runs whatever happened, each on its own: one that fails does not stop the
    others. ``interrupted()`` is the text of the :class:`KeyboardInterrupt` raised after a Ctrl+C;
    ``database`` names the storage in a "disk is full" message from SQLite.
    """
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # the interrupt reaches us; Tune's restore advice never prints
    failure: BaseException | None = None
    result: Any = None
    try:
        with _quiet_user_errors():
            result = fit()
    except BaseException as exc:  # noqa: BLE001 - re-raised below after the clean-up, as one line where possible
        failure = exc
    finally:
        if previous is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
    cleanup_error: BaseException | None = None
    for step in cleanup:
        try:
            step()
        except KeyboardInterrupt as exc:  # a second Ctrl+C during the clean-up: stop cleaning, still one line
            failure = failure or exc
            break
        except Exception as exc:  # noqa: BLE001 - the first one is reported, the others must not hide it
            cleanup_error = cleanup_error or exc
    if isinstance(failure, KeyboardInterrupt):
        try:
            text = interrupted()
        except Exception:  # noqa: BLE001 - the storage may be what failed; the advice still stands
            text = ""
        raise KeyboardInterrupt(text) from None
    if failure is not None:
        user = as_user_error(failure, database)
        if user is not None:
            raise user from None
        raise failure
    if cleanup_error is not None:
        user = as_user_error(cleanup_error, database)
        if user is not None:
            raise user from None
        raise cleanup_error
    return result

