"""Helpers for tests that start a real `kop-fast serve` process.

Servers bind 127.0.0.1 on a port the kernel picks (`--listen 127.0.0.1:0`);
the test reads the port from the "kop-fast ready" log line. Every server is
bounded in time and always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"kop-fast ready: listening on 127\.0\.0\.1:(\d+).* pulsar (pulsar://\S+)")
START_TIMEOUT_S = 60


class KopServer:
    def __init__(self, data_dir: Path, *args: str, env: dict | None = None, listen: str = "127.0.0.1:0") -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = env
        self.listen = listen  # `--listen` is repeatable: a second one would add a listener, not replace this
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.pulsar_url: str | None = None  # the Pulsar this server uses (embedded or --pulsar-url)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-kop-fast.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> "KopServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        cmd = [sys.executable, "-m", "kop_fast", "serve", "--listen", self.listen,
               "--data-dir", str(self.data_dir), *self.args]
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            m = READY.search(text)
            if m:
                self.port = int(m.group(1))
                # Every listener's bound port, in --listen order (the first is `port`).
                self.ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+) \(", text.split("listening on", 1)[1]
                                                         .split("advertised as", 1)[0])]
                self.pulsar_url = m.group(2)
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"kop-fast exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"kop-fast not ready within {timeout} s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._log.close()
        self.process = None
        return proc.returncode

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "KopServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def children_of(pid: int) -> list[int]:
    """Direct child pids of a process (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def kafka_request(port: int, api_key: int, api_version: int, body: bytes, *,
                  correlation_id: int = 1, client_id: bytes | None = b"test",
                  flexible: bool = False, timeout: float = 10) -> bytes:
    """Send one raw request and return the raw response frame (without its size)."""
    header = struct.pack(">hhi", api_key, api_version, correlation_id)
    if client_id is None:
        header += struct.pack(">h", -1)
    else:
        header += struct.pack(">h", len(client_id)) + client_id
    if flexible:
        header += b"\x00"
    payload = header + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        return recv_frame(s)


def recv_frame(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def fetch_v4(port: int, topic: str, offset: int, *, max_wait_ms: int = 100, max_bytes: int = 4 << 20,
             timeout: float = 10) -> tuple[int, int, bytes]:
    """One raw Fetch v4 of partition 0 at `offset`: (error code, high watermark, records bytes as sent)."""
    import datetime
    import io

    from kio.schema.fetch.v4.request import FetchPartition, FetchRequest, FetchTopic
    from kio.schema.fetch.v4.response import FetchResponse
    from kio.serial import entity_reader, entity_writer

    request = FetchRequest(
        replica_id=-1, max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=1,
        max_bytes=max_bytes, isolation_level=0,
        topics=(FetchTopic(topic=topic, partitions=(
            FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=max_bytes),)),))
    buf = io.BytesIO()
    entity_writer(FetchRequest)(buf, request)
    frame = kafka_request(port, api_key=1, api_version=4, body=buf.getvalue(), timeout=timeout)
    response, _ = entity_reader(FetchResponse)(frame, 4)
    [part] = response.responses[0].partitions
    return int(part.error_code), part.high_watermark, bytes(part.records or b"")
