"""Real servers for the distributed tests: a PostgreSQL and a two-node Ray cluster on this machine.

Both start once per test session (see ``tests/conftest.py``) and are stopped at teardown: only the
processes started here are signalled, by process group and by their unique temporary folder, never
by name, so other Ray clusters or databases on the machine are left alone.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["free_port", "postgres_server", "ray_cluster", "RayCluster", "RAY_ENV"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _unprivileged_user() -> str | None:
    """initdb refuses root: as root, run the server as ``postgres`` (or ``nobody``); else as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "nastest"], check=True)
    return "nastest"


def postgres_server() -> Iterator[str]:
    """Start a throw-away PostgreSQL on a free loopback port; yields its SQLAlchemy URL."""
    bindir = _pg_bindir()
    if bindir is None:
        yield from _pgserver()
        return
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, log = root / "data", root / "server.log"
    port = free_port()
    as_user = ["runuser", "-u", user, "--"] if user else []
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "nas", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c max_connections=200"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "nas", "nas"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://nas@127.0.0.1:{port}/nas"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _pgserver() -> Iterator[str]:
    """Fallback where no PostgreSQL binaries are installed: the server shipped by the pgserver wheel."""
    import pytest

    try:
        import pgserver
    except ImportError:
        pytest.skip("no PostgreSQL: neither initdb/postgres binaries nor the pgserver package are installed")
    root = Path(tempfile.mkdtemp(prefix="nas-pgserver-"))
    server = pgserver.get_server(root, cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RayCluster:
    address: str  # host:port of the head's GCS, what ``ray_address`` and ``ray.init(address=...)`` take
    temp_dir: str


# A loopback test cluster without token authentication: drivers started by the tests get the same env.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _node_ports() -> list[str]:
    """Every fixed-default port of a Ray node, picked free, so that other Rays on the machine do not clash."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
    return [arg for name in names for arg in (name, str(free_port()))]


def _ours(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def ray_cluster(cpus_per_node: int = 2) -> Iterator[RayCluster]:
    """A head node and a second node (resources ``node_a`` / ``node_b``), each ``ray start --block``
    in its own session; teardown signals exactly those sessions and the processes under our temp dir."""
    temp_dir = tempfile.mkdtemp(prefix="nas-ray-")
    port = free_port()
    env = {**os.environ, **RAY_ENV}
    log = open(Path(temp_dir) / "ray-start.log", "w")  # noqa: SIM115 - open for the cluster's lifetime
    ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [*ray, "--head", f"--port={port}", f"--num-cpus={cpus_per_node}", "--num-gpus=0",
         '--resources={"node_a": 1}', f"--temp-dir={temp_dir}", "--include-dashboard=false",
         *_node_ports()],
        env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    procs = [head]
    try:
        from ray._private.services import get_node_ip_address

        address = f"{get_node_ip_address()}:{port}"  # Ray turns 127.0.0.1 into this address anyway
        _wait_for_nodes(address, 1, procs)
        procs.append(subprocess.Popen(
            [*ray, f"--address={address}", f"--num-cpus={cpus_per_node}", "--num-gpus=0",
             '--resources={"node_b": 1}', *_node_ports()],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 2, procs)
        yield RayCluster(address, temp_dir)
    finally:
        for proc in reversed(procs):  # SIGKILL: a throw-away cluster needs no 30 s drain
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        time.sleep(1)
        for pid in _ours(temp_dir):  # anything of this cluster that outlived its session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(address: str, count: int, procs: list[subprocess.Popen]) -> None:
    """Poll the cluster (in a subprocess: this test process keeps no Ray connection) until ``count`` nodes live."""
    probe = ("import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.time() + 120
    while time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a Ray node exited while starting (exit codes {[p.poll() for p in procs]})")
        try:
            out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **RAY_ENV})
        except subprocess.TimeoutExpired:
            continue
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} node(s) in 120 s")
