"""SIGTERM and SIGHUP end a command like Ctrl+C: one line, the exit status 128 + the signal."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import signals

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_raises_keyboard_interrupt_and_sets_the_status(sig: int) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with signals.handled():
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler runs between bytecodes, at once
    assert signals.received() == sig and signals.exit_status() == 128 + sig
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored after the command


def test_reinstall_puts_the_handler_back_after_a_library_replaced_it() -> None:
    with signals.handled():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what ray.init does in the driver
        signals.reinstall()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    signals.reinstall()  # outside a command it changes nothing
    assert signal.getsignal(signal.SIGTERM) is not signals._handler


def _wait_until_caught(pid: int, sig: int, timeout: float = 120) -> None:
    """Poll /proc until the process catches ``sig`` (its SigCgt mask has the bit) and torch computes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
        threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads")))
        if caught >> (sig - 1) & 1 and threads > 1:  # handlers installed, torch's worker threads running
            return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} never installed its signal handlers")


@pytest.mark.parametrize("sig, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")])
def test_nas_train_stopped_by_a_signal_says_so_in_one_line(tmp_path: Path, sig: int, name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "nas", "train", "vit_cifar", "--data", "synthetic", "--epochs", "500",
                             "--save", str(tmp_path / "w.pt")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        _wait_until_caught(proc.pid, sig)  # main() has installed its handlers (imports take long on a loaded machine)
        time.sleep(3)  # training under way
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert lines == [f"interrupted by {name}"], lines
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob(".*tmp"))  # nothing partial saved
