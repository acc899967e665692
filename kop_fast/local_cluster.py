"""A Kafka cluster of N kop-fast proxies on one pulsar-lite, on this machine, for development.

    python -m kop_fast.local_cluster --nodes 3 [--base-port 9092] [--data-dir DIR] [-- SERVE-ARGS...]

Starts pulsar-lite (data in DIR/pulsar), then proxy i as
`python -m kop_fast serve --pulsar-url URL --node-id i --listen 127.0.0.1:(base+i) --data-dir DIR/node-i`
plus the arguments after `--`, one after the other, each once it has logged "kop-fast ready".
Their log lines are relayed with a `node-i | ` prefix. Then it prints one line with the
bootstrap list and runs until SIGINT or SIGTERM: it stops the proxies (SIGTERM), then
pulsar-lite. If a proxy exits on its own, it stops the others and exits with 1.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from kop_fast.embedded import EmbeddedPulsar, EmbeddedPulsarError, _die_with_parent

READY_MARK = "kop-fast ready"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

# The relay threads and the main thread share stdout (and, often, one pipe with stderr): each
# line goes out in one write under this lock, or print's separate "\n" lets a relayed line land
# in the middle of ours.
_output_lock = threading.Lock()


def say(line: str, stream=None) -> None:
    stream = stream or sys.stdout
    with _output_lock:
        stream.write(line if line.endswith("\n") else line + "\n")
        stream.flush()


class Proxy:
    """One `kop-fast serve` child; a thread relays its output and notices its ready line."""

    def __init__(self, node_id: int, port: int, command: list[str]) -> None:
        self.node_id, self.port = node_id, port
        self.ready = threading.Event()
        # Own session: a Ctrl-C in the terminal reaches only the launcher, which stops the
        # proxies in order; PDEATHSIG stops them should the launcher die without doing so.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        self._relay = threading.Thread(target=self._relay_output, daemon=True)
        self._relay.start()

    def _relay_output(self) -> None:
        for line in self.process.stdout:
            if READY_MARK in line:
                self.ready.set()
            say(f"node-{self.node_id} | {line}")

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.ready.wait(0.05):
                return True
        return self.ready.is_set()

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> int:
        if self.process.poll() is None:
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._relay.join(5)
        return self.process.returncode


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m kop_fast.local_cluster",
                                     description="N kop-fast proxies on one pulsar-lite, as one Kafka cluster.",
                                     epilog="Arguments after -- are passed to every `kop-fast serve`.")
    parser.add_argument("--nodes", type=int, default=3, help="number of proxies (default 3)")
    parser.add_argument("--base-port", type=int, default=9092, help="proxy i listens on BASE+i (default 9092)")
    parser.add_argument("--data-dir", type=Path, default=Path("kop-cluster"),
                        help="pulsar-lite in DIR/pulsar, proxy i in DIR/node-i (default ./kop-cluster)")
    args = parser.parse_args(ours)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    pulsar = EmbeddedPulsar(args.data_dir / "pulsar")
    proxies: list[Proxy] = []
    try:
        try:
            url = pulsar.start()
        except EmbeddedPulsarError as exc:
            say(f"local_cluster: error: {exc}", sys.stderr)
            return 1
        say(f"local_cluster: pulsar-lite at {url}")
        for i in range(args.nodes):
            port = args.base_port + i
            proxy = Proxy(i, port, [sys.executable, "-m", "kop_fast", "serve", "--pulsar-url", url,
                                    "--node-id", str(i), "--listen", f"127.0.0.1:{port}",
                                    "--data-dir", str(args.data_dir / f"node-{i}"), *extra])
            proxies.append(proxy)
            if not proxy.wait_ready(START_TIMEOUT_S):
                if not stopping.is_set():
                    say(f"local_cluster: error: node {i} did not get ready "
                        f"(exit code {proxy.process.poll()})", sys.stderr)
                return 1
        bootstrap = ",".join(f"127.0.0.1:{p.port}" for p in proxies)
        say(f"local_cluster: {args.nodes} nodes ready, bootstrap.servers={bootstrap}")

        while not stopping.wait(0.2):
            for proxy in proxies:
                if proxy.process.poll() is not None:
                    say(f"local_cluster: error: node {proxy.node_id} exited with code "
                        f"{proxy.process.returncode}; stopping the others", sys.stderr)
                    return 1
        return 0
    finally:
        for proxy in proxies:
            proxy.terminate()
        for proxy in proxies:
            proxy.wait_stopped()
        pulsar.stop()
        say("local_cluster: stopped")


if __name__ == "__main__":
    sys.exit(main())
