"""`python -m kop_fast.local_cluster`: N proxies on one pulsar-lite, started and stopped as one."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from kop_fast.embedded import free_port
from tests.support import children_of, pid_alive

pytestmark = pytest.mark.interop


def two_free_ports() -> int:
    """A port p with p and p+1 free (for --base-port p --nodes 2)."""
    for _ in range(50):
        base = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base + 1))
            return base
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Launcher:
    """The launcher as a child process; its output lines in a queue (and in `lines`)."""

    def __init__(self, tmp_path, nodes: int, base_port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kop_fast.local_cluster", "--nodes", str(nodes), "--base-port", str(base_port),
             "--data-dir", str(tmp_path / "cluster"), "--", "--group-initial-rebalance-delay-ms", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def wait_line(self, text: str, within_s: float) -> str:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        pytest.fail(f"no line with {text!r} within {within_s} s:\n{''.join(self.lines)[-3000:]}")

    def wait_exit(self, within_s: float) -> int:
        try:
            return self.process.wait(within_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher did not exit within {within_s} s:\n{''.join(self.lines)[-3000:]}")

    def kill(self) -> None:
        """Cleanup: the launcher and whatever it left running."""
        if self.process.poll() is None:
            for pid in children_of(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def launcher_factory(tmp_path):
    started: list[Launcher] = []

    def start(nodes: int, base_port: int) -> Launcher:
        started.append(Launcher(tmp_path, nodes, base_port))
        return started[-1]

    yield start
    for launcher in started:
        launcher.kill()


@pytest.mark.timeout(120)
def test_two_nodes_listen_and_stop_cleanly_on_sigterm(launcher_factory):
    base = two_free_ports()
    launcher = launcher_factory(2, base)
    line = launcher.wait_line("bootstrap.servers=", 90)
    assert line.strip().endswith(f"bootstrap.servers=127.0.0.1:{base},127.0.0.1:{base + 1}")
    assert accepts(base) and accepts(base + 1)
    children = children_of(launcher.process.pid)
    assert len(children) == 3  # pulsar-lite and two proxies

    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.wait_exit(30) == 0
    assert not any(pid_alive(pid) for pid in children)
    assert not accepts(base) and not accepts(base + 1)
    assert launcher.lines[-1].strip() == "local_cluster: stopped"


@pytest.mark.timeout(120)
def test_a_proxy_that_dies_stops_the_cluster_with_an_error(launcher_factory):
    base = two_free_ports()
    launcher = launcher_factory(2, base)
    launcher.wait_line("bootstrap.servers=", 90)
    children = children_of(launcher.process.pid)
    [proxy] = [pid for pid in children if f"127.0.0.1:{base + 1}".encode() in open(f"/proc/{pid}/cmdline", "rb").read()]
    os.kill(proxy, signal.SIGKILL)

    assert launcher.wait_exit(30) != 0
    assert any("node 1 exited" in line for line in launcher.lines)
    assert not any(pid_alive(pid) for pid in children)
    assert not accepts(base)
