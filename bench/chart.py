"""The PNG chart of an end-to-end benchmark result (bench/results/e2e-*.png): throughput per
workload, latency percentiles, server CPU and peak RSS per system."""

from __future__ import annotations

from pathlib import Path

from bench.config import workload_name
from bench.report import fmt


def chart(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result["systems"]
    names = list(systems)
    wls = [workload_name(*w) for w in result["config"]["workloads"]]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    width = 0.8 / max(1, len(names))
    for ax, phase in zip(axes[0], ("produce", "consume")):
        for i, name in enumerate(names):
            vals = [systems[name]["workloads"][wl][f"{phase}_rps"] or 0 for wl in wls]
            ax.bar([x + i * width for x in range(len(wls))], vals, width, label=name)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(wls))], wls)
        ax.set_ylabel("records/s")
        ax.set_title(f"{phase} throughput")
        ax.legend(fontsize=8)
    ax = axes[1][0]
    keys = [("produce", "p50"), ("produce", "p99"), ("e2e", "p50"), ("e2e", "p99"), ("e2e", "p99.9")]
    drawn = False
    for i, name in enumerate(names):
        vals = [systems[name][f"{k}_latency_{q}_ms"] or 0 for k, q in keys]
        drawn = drawn or any(vals)
        ax.bar([x + i * width for x in range(len(keys))], vals, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(keys))], [f"{k} {q}" for k, q in keys])
    if drawn:  # not when the latency phase was left out (--phases)
        ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"latency at {result['config']['latency_rate']:,} records/s")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    metrics = [("produce_cpu_s_per_M_mean", "CPU s/M rec produce"), ("consume_cpu_s_per_M_mean", "CPU s/M rec consume")]
    for i, name in enumerate(names):
        vals = [systems[name][k] or 0 for k, _ in metrics]
        ax.bar([x + i * width for x in range(len(metrics))], vals, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(metrics))], [t for _, t in metrics])
    ax.set_ylabel("server CPU seconds per million records")
    ax.set_title("server CPU\npeak RSS MB: " + ", ".join(
        f"{n} {fmt(systems[n]['peak_rss_mb'], '.0f')}" for n in names), fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(f"kop_fast e2e benchmark — {result['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
