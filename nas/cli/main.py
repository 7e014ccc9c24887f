"""``nas`` entry point.

Each sub-command lives in its own module of this package exposing ``add_parser(subparsers)`` (which
sets ``func`` on its parser) so that commands stay small and independent. User errors
(:class:`nas.errors.NasError`) become a one-line message and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from nas.errors import NasError

# Sub-command modules, in the order ``nas --help`` lists them.
COMMANDS = ("presets", "mixers", "build", "validate", "cost", "proxy", "train", "study", "export", "ablate")


class UsageError(NasError):
    """A command line argparse refuses: a missing argument, an unknown flag, a flag's bad value."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a refused command line is one ``error:`` line (exit 2), not usage text.

    A flag whose value a ``nas.fields`` type refused reads ``--threads must be ..., got 0``.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        flag = re.match(r"^argument ([^:/]+)(?:/[^:]+)?: (must be .*)$", message)
        if flag:
            raise UsageError(f"{flag.group(1)} {flag.group(2)}")
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.description = "Neural-architecture search and ablation runner for vision transformers."
    parser.add_argument("--version", action="version", version=f"nas {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nas.cli.{name}")
        except ModuleNotFoundError as exc:  # a command whose module is not there yet
            if exc.name == f"nas.cli.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nas")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "unknown"


def _one_line(message: str) -> str:
    """A message as one line: SQLAlchemy's "(Background on this error at: ...)" and blank lines dropped."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    return " ".join(ln for ln in lines if ln and not ln.startswith("(Background on this error"))


def _quiet_libraries() -> None:
    """Keep library chatter (Optuna's INFO lines) out of the CLI's output."""
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        _quiet_libraries()
        result = args.func(args)
    except NasError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a run's interrupt carries its own line: what finished, how to resume
        print(_one_line(f"interrupted: {exc}" if str(exc) else "interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (``| head``)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the file system refused (disk full, read-only, permissions, name too long)
        from nas.errors import os_error_message

        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
