"""The statistics of the end-to-end benchmark: latency percentiles of one phase, the best of the
rounds per system, and the kop-fast / reference ratios (over the best-of figures and round by
round)."""

from __future__ import annotations

import math
import statistics

from bench.config import KOP_SYSTEMS, PULSAR_PATH, REFERENCES, Config, workload_name


def percentiles(samples_ns: list) -> dict:
    if not samples_ns:
        return {"p50": None, "p99": None, "p99.9": None, "max": None}
    s = sorted(samples_ns)

    def pct(q):
        return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)] / 1e6  # ms

    return {"p50": pct(0.50), "p99": pct(0.99), "p99.9": pct(0.999), "max": s[-1] / 1e6}


def _best(values, higher_is_better: bool = True):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if higher_is_better else min(values)


def _spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    hi = max(values)
    return (hi - min(values)) / hi if hi else None


def aggregate(runs: list, cfg: Config) -> dict:
    """Best over rounds of every metric (noise from a shared machine only makes things
    slower), with the relative spread (max-min)/max and the per-round values."""
    systems: dict = {}
    for name in cfg.systems:
        mine = [r for r in runs if r["system"] == name]
        s: dict = {"workloads": {}, "errors": [e for r in mine for e in r["errors"]], "rounds": len(mine)}
        for size, partitions in cfg.workloads:
            wl = workload_name(size, partitions)
            w: dict = {}
            for phase in ("produce", "consume"):
                for metric in ("rps", "mbps", "server_cpu_s_per_M"):
                    vals = [r["workloads"].get(wl, {}).get(phase, {}).get(metric) for r in mine]
                    w[f"{phase}_{metric}"] = _best(vals, metric != "server_cpu_s_per_M")
                    if metric == "rps":
                        w[f"{phase}_rps_spread"] = _spread(vals)
                        w[f"{phase}_rps_rounds"] = vals
                        # How busy the client's own loop was in the round that is reported.
                        busy = [r["workloads"].get(wl, {}).get(phase, {}).get("client_thread_busy") for r in mine]
                        best = max(((v, b) for v, b in zip(vals, busy) if v is not None), default=(None, None))
                        w[f"{phase}_client_busy"] = best[1]
            s["workloads"][wl] = w
        for kind in ("produce", "e2e"):
            for q in ("p50", "p99", "p99.9"):
                vals = [(r.get("latency") or {}).get(kind, {}).get(q) for r in mine]
                s[f"{kind}_latency_{q}_ms"] = _best(vals, higher_is_better=False)
                if q == "p99":
                    s[f"{kind}_latency_p99_rounds"] = vals
                    s[f"{kind}_latency_p99_spread"] = _spread(vals)
        by_process: dict = {}
        for r in mine:
            for role, mb in (r.get("peak_rss_by_process") or {}).items():
                by_process[role] = max(by_process.get(role, 0), mb)
        s["peak_rss_by_process_mb"] = by_process
        rss = [r.get("peak_rss_bytes") for r in mine]
        s["peak_rss_mb"] = (max(v for v in rss if v) / 1e6) if any(rss) else None
        for phase in ("produce", "consume"):
            vals = [s["workloads"][workload_name(*w)][f"{phase}_server_cpu_s_per_M"] for w in cfg.workloads]
            vals = [v for v in vals if v is not None]
            s[f"{phase}_cpu_s_per_M_mean"] = sum(vals) / len(vals) if vals else None
        s["startup_s"] = _best([r.get("startup_s") for r in mine], higher_is_better=False)
        systems[name] = s
    return systems


def _geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def compute_ratios(systems: dict, cfg: Config) -> dict:
    """Ratios of kop-fast to the references, each oriented so that higher is better for kop-fast:
    throughput ours/theirs (geometric mean over the workloads), latency theirs/ours."""
    ratios: dict = {}
    for ours in KOP_SYSTEMS:
        if ours not in systems:
            continue
        for ref in REFERENCES:
            if ref not in systems:
                continue
            a, b = systems[ours], systems[ref]
            for phase in ("produce", "consume"):
                per = []
                for w in cfg.workloads:
                    wl = workload_name(*w)
                    x, y = a["workloads"][wl][f"{phase}_rps"], b["workloads"][wl][f"{phase}_rps"]
                    per.append(x / y if x and y else None)
                ratios[f"{phase}_throughput:{ours}/{ref}"] = _geomean(per) if all(per) else None
            for kind in ("produce", "e2e"):
                for q in ("p50", "p99"):
                    x, y = a[f"{kind}_latency_{q}_ms"], b[f"{kind}_latency_{q}_ms"]
                    ratios[f"{kind}_{q}_latency:{ref}/{ours}"] = (y / x) if x and y else None
    return ratios


# The pairs whose per-round ratios are reported: each ratio is taken within one round,
# where the two systems ran minutes apart, so a slow spell of the machine that spans a
# round cancels out; the best-of figures above compare each system's luckiest round.
PAIRS = (("kop-fast-kafka", "tansu"), PULSAR_PATH)


def paired_ratios(systems: dict, cfg: Config) -> dict:
    """{"ours/ref": {workload: {phase: {"rounds": [ratio per round], "median": m}}}}."""
    out: dict = {}
    # A checkout compared side by side (kop-fast-kafka@before) is paired with this one.
    trees = tuple((base, name) for name in systems for base in [name.partition("@")[0]] if base != name)
    for ours, ref in PAIRS + trees:
        if ours not in systems or ref not in systems:
            continue
        pair: dict = {}
        for w in cfg.workloads:
            wl = workload_name(*w)
            for phase in ("produce", "consume"):
                a = systems[ours]["workloads"][wl][f"{phase}_rps_rounds"]
                b = systems[ref]["workloads"][wl][f"{phase}_rps_rounds"]
                per = [x / y if x and y else None for x, y in zip(a, b)]
                valid = [v for v in per if v is not None]
                pair.setdefault(wl, {})[phase] = {"rounds": per,
                                                  "median": statistics.median(valid) if valid else None}
        out[f"{ours}/{ref}"] = pair
    return out
