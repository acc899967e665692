"""Running the end-to-end benchmark: rounds of systems in alternating order, each system's round in
a fresh Python process of its own (`python -m bench.e2e --run-system ...`), the result dict, and
the files written from it (bench/results/e2e-*.{md,json,png} and the e2e-latest.* copies)."""

from __future__ import annotations

import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench.chart import chart
from bench.config import DEFAULT_CONSUMER, RESULTS_DIR, Config, Pace, workload_name
from bench.latency import kafka_latency, pulsar_latency
from bench.report import markdown
from bench.stats import aggregate, compute_ratios, default_consumer_pairs, paired_ratios
from bench.systems import INJECT_DELAY_ENV, make_system, repo_env, terminate
from bench.workloads import kafka_consume, kafka_produce, pulsar_consume, pulsar_produce


# -- progress ---------------------------------------------------------------------------------------

class Progress:
    def __init__(self, total_steps: int) -> None:
        self.total = total_steps
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str, step: bool = False) -> None:
        if step:
            self.done += 1
        elapsed = time.monotonic() - self.start
        line = f"[{elapsed:6.1f}s {self.done}/{self.total}] {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


# -- one system, one round --------------------------------------------------------------------------

def _server_cpu(phase: dict, before: dict, after: dict, n: int) -> None:
    """The server's CPU seconds per million records of one phase: the whole tree, and by process."""
    by_role = {role: (after[role] - before.get(role, 0.0)) / n * 1e6 for role in after}
    phase["server_cpu_s_per_M"] = sum(by_role.values())
    phase["server_cpu_s_per_M_by_process"] = by_role


def measure_workload(system, cfg: Config, out: dict, label: str, topic: str, size: int, partitions: int,
                     n: int, tuning: dict | None, say: Callable[[str], None]) -> dict:
    """Produce n records into a new topic and consume them back; server CPU per phase. A failure is
    recorded (in the workload's "error" and the round's errors), not raised."""
    res: dict = {"size": size, "partitions": partitions, "records": n}
    try:
        system.create_topic(topic, partitions)
        say(f"produce {label}, {n} records")
        cpu0 = system.cpu_seconds_by_role()
        if system.protocol == "kafka":
            res["produce"] = kafka_produce(system.bootstrap, topic, n, size, cfg.linger_ms, cfg.phase_timeout_s)
        else:
            res["produce"] = pulsar_produce(system.pulsar_url, topic, partitions, n, size,
                                            cfg.linger_ms, cfg.phase_timeout_s)
        cpu1 = system.cpu_seconds_by_role()
        _server_cpu(res["produce"], cpu0, cpu1, n)
        say(f"produce {label}: {res['produce']['rps']:,.0f} rec/s; consume")
        if system.protocol == "kafka":
            res["consume"] = kafka_consume(system.bootstrap, topic, partitions, n, size, cfg.phase_timeout_s,
                                           tuning=tuning)
        else:
            res["consume"] = pulsar_consume(system.pulsar_url, topic, partitions,
                                            res["produce"]["per_partition"], size, cfg.phase_timeout_s)
        cpu2 = system.cpu_seconds_by_role()
        _server_cpu(res["consume"], cpu1, cpu2, n)
        say(f"consume {label}: {res['consume']['rps']:,.0f} rec/s")
    except Exception as exc:  # noqa: BLE001 - record it, go on with the next workload
        res["error"] = f"{type(exc).__name__}: {exc}"
        out["errors"].append(f"{label}: {res['error']}")
        say(f"{label} FAILED: {exc}")
        system.check_alive()
    return res


def measure_latency(system, cfg: Config, out: dict, label: str, topic: str, pace: Pace,
                    say: Callable[[str], None]) -> dict | None:
    """A fixed-rate phase (bench/latency.py); None (and an error of the round) if it failed."""
    say(f"{label} at {pace.rate:,} records/s for {pace.seconds:g} s")
    try:
        system.create_topic(topic, 1)
        if system.protocol == "kafka":
            return kafka_latency(system.bootstrap, topic, pace, cfg.phase_timeout_s)
        return pulsar_latency(system.pulsar_url, topic, pace, cfg.phase_timeout_s)
    except Exception as exc:  # noqa: BLE001
        out["errors"].append(f"{label}: {type(exc).__name__}: {exc}")
        say(f"{label} FAILED: {exc}")
        return None


def run_system(name: str, round_no: int, cfg: Config, workdir: Path, progress: Callable[..., None],
               logs_dir: Path | None = None) -> dict:
    system = make_system(name, workdir / f"r{round_no}")
    out: dict = {"system": name, "round": round_no, "workloads": {}, "errors": []}
    phases = set(cfg.phases)
    t_start = time.monotonic()

    def say(text: str) -> None:
        progress(f"{name} round {round_no}: {text}")

    say("starting")
    try:
        with system:
            out["startup_s"] = time.monotonic() - t_start
            if "throughput" in phases:
                for size, partitions in cfg.workloads:
                    wl = workload_name(size, partitions)
                    out["workloads"][wl] = measure_workload(
                        system, cfg, out, wl, f"bench-{size}-{partitions}p-r{round_no}", size, partitions,
                        cfg.records_for(size, name), {} if cfg.librdkafka_defaults else None, say)
            # librdkafka-only phases: pulsar-direct has no Kafka listener.
            kafka = system.protocol == "kafka"
            if "default-consumer" in phases and kafka and cfg.default_consumer_records:
                size, partitions = DEFAULT_CONSUMER
                out["default_consumer"] = measure_workload(
                    system, cfg, out, "default consumer", f"bench-default-consumer-r{round_no}", size,
                    partitions, cfg.default_consumer_records, {}, say)
            if "latency" in phases:
                out["latency"] = measure_latency(system, cfg, out, "latency", f"bench-latency-r{round_no}",
                                                 cfg.latency_pace(), say)
            if "steady" in phases and kafka:
                out["steady"] = measure_latency(system, cfg, out, "steady", f"bench-steady-r{round_no}",
                                                cfg.steady_pace(), say)
            out["peak_rss_bytes"] = system.peak_rss()
            out["peak_rss_by_process"] = system.peak_rss_by_process()
    except Exception as exc:  # noqa: BLE001 - a system that cannot start is reported, not fatal
        out["errors"].append(f"{type(exc).__name__}: {exc}")
        say(f"FAILED: {exc}")
    out["seconds"] = time.monotonic() - t_start
    if out["errors"] and logs_dir is not None:
        # Keep the server logs of a failed run (the work directory is removed at the end).
        logs_dir.mkdir(parents=True, exist_ok=True)
        for path in system.log_files():
            if path.exists():
                target = logs_dir / f"r{round_no}-{path.name}"
                shutil.copyfile(path, target)
                out.setdefault("logs", []).append(str(target))
    progress(f"{name} round {round_no}: done in {out['seconds']:.1f} s", step=True)
    return out


# Each system's client side runs in a process of its own. Measured: after one pulsar-direct
# run inside the benchmark process, librdkafka in that same process produced 0.8-1.0 M
# records/s to Tansu where a fresh process reached 1.3-1.4 M (malloc_trim did not help),
# so every system that followed pulsar-direct was measured with a slowed client, and the
# rounds after the first were worth nothing to the best-of.
ROUND_CHILD_GRACE_S = 120.0


def round_limit_s(cfg: Config) -> float:
    """How long one system's round may take: every phase's own timeout, plus the paced sending."""
    phases = set(cfg.phases)
    timeouts = (2 * len(cfg.workloads) if "throughput" in phases else 0)
    timeouts += 2 * ("default-consumer" in phases)
    timeouts += 2 * ("latency" in phases) + 2 * ("steady" in phases)  # flush, then the consumer
    paced = cfg.latency_seconds * ("latency" in phases) + cfg.steady_seconds * ("steady" in phases)
    return timeouts * cfg.phase_timeout_s + paced + ROUND_CHILD_GRACE_S


def _child_progress(text: str, step: bool = False) -> None:
    """Progress of a --run-system child: lines on stdout for the parent's Progress."""
    print(json.dumps({"progress": text, "step": step}), flush=True)


def run_system_isolated(name: str, round_no: int, cfg: Config, workdir: Path, progress,
                        logs_dir: Path | None = None) -> dict:
    """run_system() in a fresh Python process; its result, or a failed run saying why."""
    args = {"name": name, "round": round_no, "config": asdict(cfg), "workdir": str(workdir),
            "logs_dir": str(logs_dir) if logs_dir is not None else None}
    # Bounded: every phase has its own timeout; this only catches a child that hangs past them.
    limit = round_limit_s(cfg)
    failed = {"system": name, "round": round_no, "workloads": {}, "errors": []}
    proc = subprocess.Popen([sys.executable, "-m", "bench.e2e", "--run-system", json.dumps(args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=repo_env())
    result = None
    deadline = time.monotonic() + limit
    fd, pending = proc.stdout.fileno(), b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, limit)
            if not select.select([fd], [], [], min(left, 5.0))[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # a stray print from a library
                if "progress" in msg:
                    progress(msg["progress"], step=msg.get("step", False))
                elif "result" in msg:
                    result = msg["result"]
        proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        failed["errors"].append(f"client process for {name} did not finish within {limit:.0f} s")
    finally:
        # SIGTERM first: the child turns it into SystemExit and stops its servers.
        terminate(proc, timeout=30)
        proc.stdout.close()
    if result is None:
        if not failed["errors"]:
            failed["errors"].append(f"client process for {name} exited with code {proc.returncode} "
                                    "and no result")
        progress(f"{name} round {round_no}: FAILED: {failed['errors'][0]}", step=True)
        return failed
    return result


def run_system_main(args: dict) -> int:
    """--run-system: one system, one round, in this process; the result as a JSON line."""
    import signal

    def stop(_signo, _frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    cfg = Config(**args["config"])
    cfg.workloads = [tuple(w) for w in cfg.workloads]
    logs_dir = Path(args["logs_dir"]) if args.get("logs_dir") else None
    result = run_system(args["name"], args["round"], cfg, Path(args["workdir"]), _child_progress, logs_dir)
    print(json.dumps({"result": result}), flush=True)
    return 0


def run(cfg: Config, out_dir: Path | None = None, write: bool = True, echo: bool = True) -> dict:
    """Run the benchmark; returns the result dict (and writes the files when `write`)."""
    out_dir = Path(out_dir or RESULTS_DIR)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    progress = Progress(cfg.rounds * len(cfg.systems))
    tmp_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    workdir = Path(tempfile.mkdtemp(prefix="kop-fast-bench-", dir=tmp_root))
    runs = []
    t0 = time.monotonic()
    try:
        for round_no in range(1, cfg.rounds + 1):
            # Alternate systems (A B C D A B C D), reversing the order on even rounds so that
            # no system always runs first or last on a warming machine.
            order = cfg.systems if round_no % 2 else list(reversed(cfg.systems))
            for name in order:
                runs.append(run_system_isolated(name, round_no, cfg, workdir, progress, out_dir / "logs"))
    finally:
        progress.finish()
        shutil.rmtree(workdir, ignore_errors=True)
    systems = aggregate(runs, cfg)
    result = {
        "kind": "kop_fast-e2e",
        "started": started,
        "seconds": time.monotonic() - t0,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "inject_delay_ms": float(os.environ.get(INJECT_DELAY_ENV) or 0),
        "config": asdict(cfg),
        "systems": systems,
        "ratios": compute_ratios(systems, cfg),
        "paired_ratios": paired_ratios(systems, cfg),
        "default_consumer_pairs": default_consumer_pairs(systems),
        "runs": runs,
    }
    text = markdown(result)
    if echo:
        print(text)
    if write:
        write_results(result, text, out_dir)
    return result


def write_results(result: dict, text: str, out_dir: Path) -> None:
    """e2e-[quick-]<timestamp>.{json,md,png} in `out_dir`, copied to e2e-latest.*; their names go
    to result["files"] (not into the JSON file, which is written first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_dir / f"e2e-{'quick-' if result['config']['quick'] else ''}{stamp}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=1))
    base.with_suffix(".md").write_text(text)
    try:
        chart(result, base.with_suffix(".png"))
    except Exception as exc:  # noqa: BLE001 - the chart is a nicety; the numbers are written
        print(f"bench.e2e: no chart: {exc}", file=sys.stderr)
    for suffix in (".json", ".md", ".png"):
        src = base.with_suffix(suffix)
        if src.exists():
            shutil.copyfile(src, out_dir / f"e2e-latest{suffix}")
    result["files"] = [str(base.with_suffix(s)) for s in (".md", ".json", ".png")]
    print(f"bench.e2e: {result['seconds']:.0f} s; wrote {base}.{{md,json,png}}", file=sys.stderr)
