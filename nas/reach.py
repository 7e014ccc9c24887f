"""Services a run connects to (a Ray cluster, a database server) are probed before anything waits on them.

``ray.init(address="127.0.0.1:1")`` retries for minutes before it gives up, and a database driver may
wait as long for a host that drops packets. One TCP connection with a timeout of
:data:`PROBE_SECONDS` says in that time whether anything listens at the address; if nothing does,
the run stops in one line naming the field, the address and what happened. A probe that succeeds
proves only that a port is open: the service's own errors still come from the service.
"""
from __future__ import annotations

import socket
import time

from nas.errors import ConfigError

__all__ = ["PROBE_SECONDS", "probe", "probe_ray_address", "probe_storage_url"]

PROBE_SECONDS = 3.0  # a healthy service on a LAN answers in milliseconds; a dead one never does
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433,
                  "oracle": 1521}


def probe(host: str, port: int, timeout: float = PROBE_SECONDS) -> str | None:
    """``None`` when a TCP connection to ``host:port`` opens within ``timeout`` s, else why not."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror or exc})"
    except OSError as exc:
        spent = time.monotonic() - start
        return f"{exc.strerror or exc} after {spent:.1f} s"


def probe_ray_address(address: str | None, timeout: float = PROBE_SECONDS) -> None:
    """Refuse a ``ray_address`` of the form ``host:port`` or ``ray://host:port`` nothing listens at."""
    if address in (None, "", "local", "auto"):
        return
    text = str(address)
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return  # the config's validator owns the address's form
    why = probe(host or "127.0.0.1", int(port), timeout)
    if why is not None:
        raise ConfigError(f"ray_address {text!r}: cannot reach a Ray cluster there ({why}); start one with "
                          f"`ray start --head` and give its address, or remove ray_address to run on this machine")


def probe_storage_url(url: str, timeout: float = PROBE_SECONDS) -> None:
    """Refuse a database URL whose server does not answer (SQLite files are not probed)."""
    if url.startswith("sqlite"):
        return
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the storage itself
        return
    dialect = parsed.get_backend_name()
    host = parsed.host
    port = parsed.port or _DEFAULT_PORTS.get(dialect)
    if not host or not port or host.startswith("/"):  # a Unix socket: nothing to probe over TCP
        return
    why = probe(host, int(port), timeout)
    if why is not None:
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"storage {shown!r}: cannot reach the database server {host}:{port} ({why}); start it "
                          f"or fix the URL")
