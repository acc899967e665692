"""The Markdown report of an end-to-end benchmark result (the table printed and written as
bench/results/e2e-*.md)."""

from __future__ import annotations

from bench.config import workload_name
from bench.workloads import CONSUMER_TUNING


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


def markdown(result: dict) -> str:
    cfg = result["config"]
    systems = result["systems"]
    names = list(systems)
    wls = [workload_name(*w) for w in cfg["workloads"]]
    lines = [f"# kop_fast end-to-end benchmark ({'quick' if cfg['quick'] else 'full'} run)", "",
             f"{result['started']}, {result['machine']}, {cfg['rounds']} round(s) per system, alternating. "
             f"Produce/consume: {records_text(cfg)}; "
             f"acks=all, linger.ms={cfg['linger_ms']}. Latency: {cfg['latency_size']} B records at "
             f"{cfg['latency_rate']:,}/s for {cfg['latency_seconds']:g} s, linger.ms={cfg['latency_linger_ms']}. "
             "Consumers: " + ("librdkafka defaults" if cfg.get("librdkafka_defaults") else
                              ", ".join(f"{k}={v}" for k, v in CONSUMER_TUNING.items()) +
                              " (see CONSUMER_TUNING in bench/workloads.py)") + ", metadata known before the clock starts. "
             "Best of the rounds (highest throughput, lowest latency and CPU); ± is the spread between rounds, "
             "(max-min)/max.", ""]
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
    lines += ["## Latency (ms) and server resources", "",
              "| system | produce p50 | produce p99 | produce p99.9 | e2e p50 | e2e p99 | e2e p99.9 "
              "| server CPU s/M rec produce | consume | peak RSS MB |",
              "|---|" + "---:|" * 9]
    for name in names:
        s = systems[name]
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
              "per million records, mean over the workloads. Latency: produce = delivery report, "
              "e2e = send to receipt in a separate consumer process.", ""]
    acc = systems.get("kop-fast-kafka", {}).get("produce_latency_p99_ms")
    if acc is not None:
        lines += [f"Acceptance: p99 produce latency at {cfg['latency_rate']:,} records/s for kop-fast "
                  f"(kafka format) = {acc:.2f} ms: {'PASS' if acc <= 5 else 'FAIL'} (<= 5 ms)", ""]
    paired = result.get("paired_ratios") or {}
    if paired:
        lines += ["## Paired ratios, round by round", "",
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
                    rounds = " ".join(fmt(v, ".2f") for v in r.get("rounds") or [])
                    cells.append(f"**{fmt(r.get('median'), '.2f')}** ({rounds})")
                lines.append(f"| {pair} | {phase} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Ratios (higher is better for kop-fast)", "", "| ratio | value |", "|---|---:|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {fmt(value, '.3f')} |")
    errors = [(n, e) for n in names for e in systems[n]["errors"]]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {n}: {e}" for n, e in errors]
    return "\n".join(lines) + "\n"
