"""The Markdown report of an end-to-end benchmark result (the table printed and written as
bench/results/e2e-*.md)."""

from __future__ import annotations

from bench.config import DEFAULT_CONSUMER, KAFKA_REFERENCE, PHASES, workload_name
from bench.stats import HOLD_FLOOR_MS, HOLD_GROWTH
from bench.workloads import CONSUMER_TUNING, STALL_GAP_MS


def fmt(v, spec=",.0f", none="—"):
    return none if v is None else format(v, spec)


def records_text(cfg: dict) -> str:
    def counts(n):
        return f"{n:,} records (100 B), {max(1, n // 4):,} (1 KiB)"
    # Results written before pulsar_path_records existed have only "records".
    slow = cfg.get("pulsar_path_records", cfg["records"])
    if slow == cfg["records"]:
        return counts(cfg["records"])
    return (f"{counts(cfg['records'])} for kop-fast-kafka and tansu; {counts(slow)} for the Pulsar-path "
            "pair kop-fast-pulsar and pulsar-direct (about 40 k records/s: 12 s phases)")


def rounds_text(values, spec=".2f") -> str:
    return " ".join(fmt(v, spec) for v in values or [])


def steady_section(result: dict) -> list:
    """The steady-rate probe: end-to-end latency at a rate every system sustains, and whether it holds."""
    cfg, systems = result["config"], result["systems"]
    rows = [(n, s["steady"]) for n, s in systems.items() if s.get("steady")]
    if not rows:
        return []
    lines = [f"## Steady rate: end-to-end latency at {cfg['steady_rate']:,} records/s for {cfg['steady_seconds']:g} s",
             "",
             f"{cfg['latency_size']} B records, librdkafka producer (linger.ms={cfg['steady_linger_ms']}, acks=all); "
             "the consumer runs in a process of its own with librdkafka's default settings and poll()s one "
             "record at a time; latency = receipt minus the produce() call (CLOCK_MONOTONIC in the record). "
             "Best of the rounds; the thirds are the first and the last third of the run. *growth* = the "
             f"larger of (p50 of the last third + {HOLD_FLOOR_MS:g} ms) / (p50 of the first third + "
             f"{HOLD_FLOOR_MS:g} ms) and the same for p99, per round; the median of the rounds (all rounds in "
             f"parentheses): above {HOLD_GROWTH:g} the system falls behind at this rate.", "",
             "| system | e2e p50 | e2e p99 | e2e p99.9 | p50 first → last third | p99 first → last third "
             "| growth (rounds) | holds | produce p99 |", "|---|" + "---:|" * 7 + "---:|"]
    for name, st in rows:
        p99 = fmt(st["e2e_p99_ms"], ".2f")
        if st.get("e2e_p99_spread") is not None:
            p99 += f" ±{st['e2e_p99_spread'] * 100:.0f}%"
        g = st.get("growth")
        holds = "—" if g is None else ("yes" if g <= HOLD_GROWTH else "**falls behind**")
        if st.get("missing_max"):
            holds += f" ({st['missing_max']:,} records never received)"
        lines.append(f"| {name} | {fmt(st['e2e_p50_ms'], '.2f')} | {p99} | {fmt(st['e2e_p99.9_ms'], '.2f')} "
                     f"| {fmt(st.get('first_third_p50_ms'), '.2f')} → {fmt(st.get('last_third_p50_ms'), '.2f')} "
                     f"| {fmt(st['first_third_p99_ms'], '.2f')} → {fmt(st['last_third_p99_ms'], '.2f')} "
                     f"| {fmt(g, '.2f')} ({rounds_text(st.get('growth_rounds'))}) | {holds} "
                     f"| {fmt(st['produce_p99_ms'], '.2f')} |")
    lines.append("")
    acc = systems.get("kop-fast-pulsar", {}).get("steady")
    if acc:
        g = acc.get("growth")
        verdict = "—" if g is None else ("holds" if g <= HOLD_GROWTH else "falls behind")
        lines += [f"Steady rate, kop-fast (pulsar format), {acc['rate']:,} records/s for {acc['seconds']:g} s: "
                  f"e2e p99 {fmt(acc['e2e_p99_ms'], '.2f')} ms, growth {fmt(g, '.2f')}: {verdict}"
                  + ("" if (acc.get("seconds") or 0) >= 60 else " (the acceptance run is 60 s: --steady-seconds 60)"),
                  ""]
    return lines


def default_consumer_section(result: dict) -> list:
    """The default-consumer workload: the same records read back with librdkafka's default settings."""
    cfg, systems = result["config"], result["systems"]
    rows = [(n, s["default_consumer"]) for n, s in systems.items() if s.get("default_consumer")]
    if not rows:
        return []
    size, partitions = DEFAULT_CONSUMER
    ref = systems.get(KAFKA_REFERENCE, {}).get("default_consumer") or {}
    pairs = result.get("default_consumer_pairs") or {}
    lines = [f"## Default consumer: {cfg['default_consumer_records']:,} records of {size} B, {partitions} partition",
             "",
             "Produced as in the throughput workloads, then read from the beginning by a librdkafka consumer "
             "with its default settings (no CONSUMER_TUNING: fetch.queue.backoff.ms=1000, "
             "queued.min.messages=100000). *stalled*: rounds whose read waited at least "
             f"{STALL_GAP_MS:g} ms between two batches (it lost a backoff second), of the rounds. "
             f"vs {KAFKA_REFERENCE}: consume records/s over {KAFKA_REFERENCE}'s, best of "
             "the rounds, and round by round (median first). Server CPU: the server process tree (kop-fast and "
             "its pulsar-lite) per million records.", "",
             f"| system | produce records/s | consume records/s | stalled | vs {KAFKA_REFERENCE} | paired, round by round "
             "| server CPU s/M rec produce | consume | consumer busy |", "|---|" + "---:|" * 8]
    for name, w in rows:
        rps = w["consume_rps"]
        cell = "failed" if rps is None else f"{rps:,.0f}"
        if w.get("consume_rps_spread") is not None:
            cell += f" ±{w['consume_rps_spread'] * 100:.0f}%"
        ratio = rps / ref["consume_rps"] if rps and ref.get("consume_rps") else None
        pair = pairs.get(f"{name}/{KAFKA_REFERENCE}")
        paired = f"**{fmt(pair['median'], '.2f')}** ({rounds_text(pair['rounds'])})" if pair else "—"
        busy = w.get("consume_client_busy")
        stalled = f"{w['stalled_rounds']} of {w['read_rounds']}" if w.get("read_rounds") else "—"
        lines.append(f"| {name} | {fmt(w['produce_rps'])} | {cell} | {stalled} | {fmt(ratio, '.2f')} | {paired} "
                     f"| {fmt(w['produce_server_cpu_s_per_M'], '.2f')} | {fmt(w['consume_server_cpu_s_per_M'], '.2f')} "
                     f"| {fmt(busy and busy * 100, '.0f')}% |")
    split = []
    for name, w in rows:
        produce, consume = w.get("produce_server_cpu_mean_by_process"), w.get("consume_server_cpu_mean_by_process") or {}
        if produce:
            split.append(f"{name}: " + ", ".join(f"{role} {fmt(cpu, '.2f')} / {fmt(consume.get(role), '.2f')}"
                                                 for role, cpu in produce.items()))
    if split:
        lines += ["", "Server CPU by process, s/M records produced / consumed, mean of the rounds: "
                  + "; ".join(split) + "."]
    return lines + [""]


def throughput_section(result: dict) -> list:
    """The throughput workloads: produce and consume rates, and how busy the client loop was."""
    systems = result["systems"]
    names = list(systems)
    wls = [workload_name(*w) for w in result["config"]["workloads"]]
    lines: list = []
    for phase in ("produce", "consume"):
        lines += [f"## {phase.capitalize()} throughput (records/s, MB/s)", "",
                  "| system | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)]
        for name in names:
            cells = []
            for wl in wls:
                w = systems[name]["workloads"][wl]
                rps, mbps, spread = w[f"{phase}_rps"], w[f"{phase}_mbps"], w[f"{phase}_rps_spread"]
                cell = "failed" if rps is None else f"{rps:,.0f} ({mbps:,.1f} MB/s)"
                if spread is not None:
                    cell += f" ±{spread * 100:.0f}%"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    busy_rows = []
    for name in names:
        cells = []
        for wl in wls:
            w = systems[name]["workloads"][wl]
            p, c = w.get("produce_client_busy"), w.get("consume_client_busy")
            cells.append(f"{fmt(p and p * 100, '.0f')}% / {fmt(c and c * 100, '.0f')}%")
        busy_rows.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["## Client saturation (produce / consume)", "",
              "CPU time of the benchmark's own thread (the Python loop calling produce() or consume()) "
              "as a share of the phase's wall time, in the reported round. Near 100% the client, not "
              "the server, sets the rate: a faster server cannot show.", "",
              "| system | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)] + busy_rows + [""]
    return lines


def paired_section(result: dict) -> list:
    paired = result.get("paired_ratios") or {}
    if not paired:
        return []
    wls = [workload_name(*w) for w in result["config"]["workloads"]]
    lines = ["## Paired ratios, round by round", "",
             "Throughput of kop-fast over its reference within each round (the two ran minutes "
             "apart), median over the rounds, and the rounds in order. A slow spell of the "
             "machine cancels out here; the best-of figures above compare each system's "
             "luckiest round.", "",
             "| pair | phase | " + " | ".join(wls) + " |", "|---|---|" + "---:|" * len(wls)]
    for pair, by_wl in paired.items():
        for phase in ("produce", "consume"):
            cells = []
            for wl in wls:
                r = (by_wl.get(wl) or {}).get(phase) or {}
                cells.append(f"**{fmt(r.get('median'), '.2f')}** ({rounds_text(r.get('rounds'))})")
            lines.append(f"| {pair} | {phase} | " + " | ".join(cells) + " |")
    return lines + [""]


def latency_section(result: dict) -> list:
    """The fixed-rate latency phase and the server resources (CPU over the throughput workloads, RSS)."""
    cfg, systems = result["config"], result["systems"]
    lines = ["## Latency (ms) and server resources", "",
             "| system | produce p50 | produce p99 | produce p99.9 | e2e p50 | e2e p99 | e2e p99.9 "
             "| server CPU s/M rec produce | consume | peak RSS MB |",
             "|---|" + "---:|" * 9]
    for name, s in systems.items():
        cells = []
        for k in ("produce", "e2e"):
            for q in ("p50", "p99", "p99.9"):
                cell = fmt(s[f"{k}_latency_{q}_ms"], ".2f")
                if q == "p99" and s[f"{k}_latency_p99_spread"] is not None:
                    cell += f" ±{s[f'{k}_latency_p99_spread'] * 100:.0f}%"
                cells.append(cell)
        rss = fmt(s["peak_rss_mb"], ".0f")
        if len(s.get("peak_rss_by_process_mb") or {}) > 1:
            rss += " (" + " + ".join(f"{k} {v:.0f}" for k, v in s["peak_rss_by_process_mb"].items()) + ")"
        cells += [fmt(s["produce_cpu_s_per_M_mean"], ".2f"), fmt(s["consume_cpu_s_per_M_mean"], ".2f"), rss]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "CPU: utime+stime of the server process tree (kop-fast + its pulsar-lite; Tansu; pulsar-lite) "
              "per million records, mean over the throughput workloads. Latency: produce = delivery report, "
              "e2e = send to receipt in a separate consumer process (librdkafka defaults, poll() per record).", ""]
    acc = systems.get("kop-fast-kafka", {}).get("produce_latency_p99_ms")
    if acc is not None:
        lines += [f"Acceptance: p99 produce latency at {cfg['latency_rate']:,} records/s for kop-fast "
                  f"(kafka format) = {acc:.2f} ms: {'PASS' if acc <= 5 else 'FAIL'} (<= 5 ms)", ""]
    return lines


def markdown(result: dict) -> str:
    cfg = result["config"]
    systems = result["systems"]
    # Results written before --phases existed ran the throughput workloads and the latency phase.
    phases = cfg.get("phases", ["throughput", "latency"])
    extra = ""
    if "steady" in phases:
        extra += (f" Steady rate: {cfg['steady_rate']:,}/s for {cfg['steady_seconds']:g} s "
                  "(Kafka systems).")
    if "default-consumer" in phases and cfg.get("default_consumer_records"):
        extra += f" Default consumer: {cfg['default_consumer_records']:,} records (Kafka systems)."
    lines = [f"# kop_fast end-to-end benchmark ({'quick' if cfg['quick'] else 'full'} run)", "",
             f"{result['started']}, {result['machine']}, {cfg['rounds']} round(s) per system, alternating. "
             + ("" if set(PHASES) <= set(phases) else f"Phases: {', '.join(phases)}. ") +
             f"Produce/consume: {records_text(cfg)}; "
             f"acks=all, linger.ms={cfg['linger_ms']}. Latency: {cfg['latency_size']} B records at "
             f"{cfg['latency_rate']:,}/s for {cfg['latency_seconds']:g} s, linger.ms={cfg['latency_linger_ms']}."
             + extra + " Consumers of the throughput workloads: "
             + ("librdkafka defaults" if cfg.get("librdkafka_defaults") else
                ", ".join(f"{k}={v}" for k, v in CONSUMER_TUNING.items()) +
                " (see CONSUMER_TUNING in bench/workloads.py)") + ", metadata known before the clock starts. "
             "Best of the rounds (highest throughput, lowest latency and CPU); ± is the spread between rounds, "
             "(max-min)/max.", ""]
    if "throughput" in phases:
        lines += throughput_section(result)
    lines += default_consumer_section(result)
    lines += latency_section(result)
    lines += steady_section(result)
    if "throughput" in phases:
        lines += paired_section(result)
    lines += ["## Ratios (higher is better for kop-fast)", "", "| ratio | value |", "|---|---:|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {fmt(value, '.3f')} |")
    errors = [(n, e) for n in systems for e in systems[n]["errors"]]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {n}: {e}" for n, e in errors]
    return "\n".join(lines) + "\n"
