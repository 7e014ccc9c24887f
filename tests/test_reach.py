"""An unreachable Ray cluster or database server fails within PROBE_SECONDS, in one line."""
from __future__ import annotations

import socket
import time

import pytest

from nas.errors import ConfigError
from nas.reach import PROBE_SECONDS, probe, probe_ray_address, probe_storage_url


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there now
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "localhost:{port}"])
def test_a_ray_address_nothing_listens_at_fails_at_once(address: str) -> None:
    address = address.format(port=_closed_port())
    start = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^ray_address '{address}': cannot reach a Ray cluster there \("):
        probe_ray_address(address)
    assert time.monotonic() - start < PROBE_SECONDS


@pytest.mark.parametrize("address", [None, "", "local", "auto"])
def test_local_ray_is_not_probed(address: str | None) -> None:
    probe_ray_address(address)


def test_a_listening_port_passes_and_a_database_url_is_probed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert probe("127.0.0.1", port) is None
        probe_ray_address(f"127.0.0.1:{port}")
        probe_storage_url(f"postgresql://u:secret@127.0.0.1:{port}/db")
    with pytest.raises(ConfigError, match=r"storage 'postgresql://u:\*\*\*@127\.0\.0\.1:1/db': cannot reach the "
                                          r"database server 127\.0\.0\.1:1"):
        probe_storage_url("postgresql://u:secret@127.0.0.1:1/db")  # the password is never printed
    probe_storage_url("sqlite:///x.db")
    assert "unknown host" in (probe("no-such-host.invalid", 80) or "")
