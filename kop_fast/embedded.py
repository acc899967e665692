"""The embedded default Pulsar: the pulsar-lite broker from the installed wheel, run as a child process.

Used when no --pulsar-url is given. It listens on a free loopback port, keeps
its data and log under the data directory (so data survives a restart with
the same directory), and is stopped when kop_fast stops.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
READY_POLL_S = 0.01


class EmbeddedPulsarError(RuntimeError):
    """The embedded broker could not be started."""


def find_binary() -> str:
    try:
        from pulsar_lite.binary_finder import find_pulsar_lite_binary
    except ImportError as exc:
        raise EmbeddedPulsarError("the pulsar-lite package is not installed") from exc
    try:
        return find_pulsar_lite_binary()
    except FileNotFoundError as exc:
        raise EmbeddedPulsarError("the pulsar-lite package has no broker binary") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    try:
        # An address, not a name: create_connection would resolve "127.0.0.1" on every poll.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect((host, port))
            return True
    except OSError:
        return False


class EmbeddedPulsar:
    """A pulsar-lite child process bound to 127.0.0.1 on a free port."""

    host = "127.0.0.1"

    def __init__(self, data_dir: Path, log_level: str = "warn") -> None:
        self.data_dir = Path(data_dir)
        self.log_level = log_level
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"pulsar://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "pulsar-lite.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "pulsar-lite.pid"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start the broker and wait until it accepts connections; its URL."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the broker process without waiting for it (see wait_ready): kop_fast imports its
        server while pulsar-lite opens its database."""
        binary = find_binary()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPulsarError(f"cannot create data directory {str(self.data_dir)!r}: {exc.strerror}") from None
        # pulsar-lite keeps its RocksDB in "<db-path>.rocksdb".
        db_path = self.data_dir / "pulsar"
        _stop_leftover(self.pid_path)
        config_path = self.data_dir / "pulsar-lite.toml"
        # Written every start so an old file cannot silently change behaviour.
        # pulsar-lite ignores keys it does not know and falls back to defaults on any
        # error, so this file stays minimal. Its metrics endpoint would otherwise bind
        # 0.0.0.0:8080; below 5 MiB (the client's limit) an oversize message makes the
        # client reconnect forever.
        config_path.write_text(
            "# written by kop_fast at every start of the embedded broker\n"
            f'log_level = "{self.log_level}"\n'
            "default_partitions = 0\n"
            "max_message_size_bytes = 10485760\n"
            "\n[metrics]\nenabled = false\n"
        )
        self._command = [binary, "--db-path", str(db_path), "--config", str(config_path),
                         "--log-level", self.log_level]
        self._spawn()

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start the broker again after it stopped (or was killed), on the same port and data.

        One try: clients know the old URL, so a taken port is an error, not a reason to move."""
        self.stop()
        self._spawn(self.port)
        return self.wait_ready(timeout, tries=1)

    def _spawn(self, port: int | None = None) -> None:
        self.port = port or free_port(self.host)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self._command, "--addr", f"{self.host}:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C in the terminal reaches kop_fast, which stops
            # the broker in order, instead of killing both at once.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.pid_path.write_text(str(self.process.pid))

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S, tries: int = 3) -> str:
        """Wait until the launched broker accepts connections; its URL."""
        last_error = "unknown error"
        for attempt in range(tries):  # a free port can be taken between probe and bind
            if attempt:
                self._close_log()
                self._spawn()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    last_error = f"exited with code {self.process.returncode} (see {self.log_path})"
                    break
                if _accepts(self.host, self.port):
                    return self.url
                # Fine-grained: pulsar-lite opens its port ~0.1-0.5 s after it starts.
                time.sleep(READY_POLL_S)
            else:
                self.stop()
                raise EmbeddedPulsarError(f"pulsar-lite did not accept connections within {timeout:.0f} s "
                                          f"(see {self.log_path})")
        self._close_log()
        raise EmbeddedPulsarError(f"pulsar-lite {last_error}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self.process = None
        self._close_log()
        try:
            self.pid_path.unlink()
        except FileNotFoundError:
            pass

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "EmbeddedPulsar":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()




def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when kop_fast dies, even by kill -9."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def _stop_leftover(pid_path: Path) -> None:
    """Stop a broker an earlier kop_fast left running on this data directory (it holds the DB lock)."""
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"pulsar-lite" not in fh.read():
                return
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
