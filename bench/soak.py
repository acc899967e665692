"""Soak: minutes of steady produce/consume with consumer-group churn against one `kop-fast serve`.

    python -m bench.soak --minutes 10 [--rate 2000] [--partitions 4] [--csv out.csv]

Starts the server the way the README does (embedded pulsar-lite, its own data
directory, `--metrics-listen`), runs a confluent-kafka producer at `--rate`
records/s and a consumer group whose members are replaced one at a time every
`--churn-s` seconds (each join and leave is a rebalance), and samples every
`--sample-s` seconds: RSS and open file descriptors and threads of kop-fast and
of its pulsar-lite, open connections, and what kop-fast holds open in Pulsar
(producers, readers, partition logs: `kop_fast_storage_handles`). At the end it
prints the first sample after warm-up, the last one and the largest, and checks
that every acknowledged record was consumed. Outside CI: it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from kop_fast.embedded import free_port

READY = re.compile(r"kop-fast ready: listening on 127\.0\.0\.1:(\d+)")
TOPIC, GROUP = "soak", "soak-group"


def proc_figures(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return {"rss_mb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    wanted = {}
    for line in text.splitlines():
        m = re.match(r'kop_fast_storage_handles\{kind="(\w+)"\} (\S+)', line)
        if m:
            wanted[m.group(1)] = int(float(m.group(2)))
        elif line.startswith("kop_fast_connections "):
            wanted["connections"] = int(float(line.split()[1]))
    return wanted


class Producer(threading.Thread):
    def __init__(self, bootstrap: str, rate: int) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer as KafkaProducer

        self.producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.rate = rate
        self.acked: set[bytes] = set()
        self.failed = 0
        self.stopping = threading.Event()

    def _report(self, err, msg) -> None:
        if err is None:
            self.acked.add(msg.value())
        else:
            self.failed += 1

    def run(self) -> None:
        n = 0
        started = time.monotonic()
        while not self.stopping.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while n < due:
                self.producer.produce(TOPIC, value=b"%012d" % n, on_delivery=self._report)
                n += 1
            self.producer.poll(0.01)
        self.producer.flush(30)


class Member(threading.Thread):
    def __init__(self, bootstrap: str, seen: set) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                                  "auto.commit.interval.ms": 1000})
        self.seen = seen
        self.stopping = threading.Event()

    def run(self) -> None:
        self.consumer.subscribe([TOPIC])
        while not self.stopping.is_set():
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.seen.add(msg.value())
        self.consumer.close()  # commits, then leaves the group (a rebalance)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=2000, help="records/s produced")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--members", type=int, default=2, help="consumers in the group at a time")
    parser.add_argument("--churn-s", type=float, default=20, help="replace one member this often")
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--warmup-s", type=float, default=60, help="samples before this are not the baseline")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--read-cache-mb", type=int, default=64,
                        help="the server's entry cache (it grows to this and stays: a small one plateaus sooner)")
    args = parser.parse_args(argv)

    data = Path(tempfile.mkdtemp(prefix="kop-soak-"))
    metrics_port = free_port()
    log = open(data / "kop-fast.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "kop_fast", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data / "data"),
         "--metrics-listen", f"127.0.0.1:{metrics_port}", "--default-num-partitions", str(args.partitions),
         "--read-cache-mb", str(args.read_cache_mb)],
        stdout=log, stderr=subprocess.STDOUT)
    samples: list[dict] = []
    try:
        port = wait_ready(data / "kop-fast.log", server)
        print(f"kop-fast pid {server.pid}, log {data / 'kop-fast.log'}", flush=True)
        bootstrap = f"127.0.0.1:{port}"
        producer = Producer(bootstrap, args.rate)
        producer.start()
        seen: set[bytes] = set()
        members = [Member(bootstrap, seen) for _ in range(args.members)]
        for m in members:
            m.start()
        started = time.monotonic()
        next_churn = started + args.churn_s
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.sample_s)
            if time.monotonic() >= next_churn:
                members.pop(0).stopping.set()
                members.append(Member(bootstrap, seen))
                members[-1].start()
                next_churn += args.churn_s
            samples.append(sample(server.pid, metrics_port, time.monotonic() - started, len(producer.acked)))
            print(format_sample(samples[-1]), flush=True)
        producer.stopping.set()
        producer.join(60)
        deadline = time.monotonic() + 60
        while not producer.acked <= seen and time.monotonic() < deadline:
            time.sleep(0.5)
        for m in members:
            m.stopping.set()
        for m in members:
            m.join(30)
        missing = len(producer.acked - seen)
        report(samples, args.warmup_s, len(producer.acked), producer.failed, missing)
        if args.csv:
            write_csv(args.csv, samples)
        return 1 if missing else 0
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def wait_ready(log_path: Path, server: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = READY.search(log_path.read_text(errors="replace"))
        if m:
            return int(m.group(1))
        if server.poll() is not None:
            raise SystemExit(f"kop-fast exited:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("kop-fast not ready in time")


def sample(pid: int, metrics_port: int, elapsed: float, acked: int) -> dict:
    row = {"t_s": round(elapsed), "acked": acked}
    row.update({f"kop_{k}": v for k, v in proc_figures(pid).items()})
    for child in children(pid):
        row.update({f"pulsar_{k}": v for k, v in proc_figures(child).items()})
    row.update(scrape(metrics_port))
    return row


def format_sample(row: dict) -> str:
    return "  ".join(f"{k}={v}" for k, v in row.items())


def report(samples: list[dict], warmup_s: float, acked: int, failed: int, missing: int) -> None:
    if not samples:
        return
    base = next((s for s in samples if s["t_s"] >= warmup_s), samples[0])
    last = samples[-1]
    print(f"\nsoak: {last['t_s']} s, {acked} records acknowledged, {failed} failed, {missing} not consumed")
    print(f"{'figure':<24}{'after warm-up':>14}{'last':>10}{'max':>10}")
    for key in base:
        if key in ("t_s", "acked"):
            continue
        print(f"{key:<24}{base[key]:>14}{last.get(key, ''):>10}{max(s.get(key, 0) for s in samples):>10}")


def write_csv(path: Path, samples: list[dict]) -> None:
    keys = list(dict.fromkeys(k for s in samples for k in s))
    with open(path, "w") as fh:
        fh.write(",".join(keys) + "\n")
        for s in samples:
            fh.write(",".join(str(s.get(k, "")) for k in keys) + "\n")


if __name__ == "__main__":
    sys.exit(main())
