"""The statistics of the end-to-end benchmark: latency percentiles of one phase, the best of the
rounds per system, and the kop-fast / reference ratios (over the best-of figures and round by
round)."""

from __future__ import annotations

import math
import statistics

from bench.config import KAFKA_REFERENCE, KOP_SYSTEMS, PULSAR_PATH, REFERENCES, Config, workload_name
from bench.workloads import STALL_GAP_MS


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


def aggregate_workload(per_round: list) -> dict:
    """One workload over the rounds (each round's workload dict, {} where it did not run): per phase
    the best rps, MB/s and server CPU per million records, the rps spread and per-round values."""
    w: dict = {}
    for phase in ("produce", "consume"):
        for metric in ("rps", "mbps", "server_cpu_s_per_M"):
            vals = [(r or {}).get(phase, {}).get(metric) for r in per_round]
            w[f"{phase}_{metric}"] = _best(vals, metric != "server_cpu_s_per_M")
            if metric == "rps":
                w[f"{phase}_rps_spread"] = _spread(vals)
                w[f"{phase}_rps_rounds"] = vals
                # How busy the client's own loop was in the round that is reported.
                busy = [(r or {}).get(phase, {}).get("client_thread_busy") for r in per_round]
                best = max(((v, b) for v, b in zip(vals, busy) if v is not None), default=(None, None))
                w[f"{phase}_client_busy"] = best[1]
        # The mean over the rounds, by server process: the best round of the sum above can
        # come from a lucky round of one process, and the split shows proxy and broker apart.
        by_process: dict = {}
        for r in per_round:
            for role, cpu in ((r or {}).get(phase, {}).get("server_cpu_s_per_M_by_process") or {}).items():
                by_process.setdefault(role, []).append(cpu)
        w[f"{phase}_server_cpu_mean_by_process"] = {role: statistics.fmean(v) for role, v in by_process.items()}
    return w


# The steady-rate probe "holds" while its growth (below) is at most this.
HOLD_GROWTH = 2.0
# Added to both latencies before they are divided: on a busy 2-core machine a p99 of 10 ms in one
# third and 20 ms in the next is a scheduler hiccup, not a backlog (measured: kop-fast-kafka's plain
# p99 ratio was 1.8 in two of three rounds with p99s of 10-25 ms). 50 ms is 250 records at
# 5,000/s; a system that falls behind gains seconds (2 ms injected per request: p99 6 s -> 12 s).
HOLD_FLOOR_MS = 50.0


def growth(result: dict | None) -> float | None:
    """How much later the last third of a fixed-rate run arrived than the first: the larger of the
    p50 and p99 ratios, last third over first third, each latency plus HOLD_FLOOR_MS. 1 = it holds;
    a backlog that grows linearly from nothing gives about 3. The p50 because a backlog moves every
    record (kop-fast-pulsar, 60 s: p50 17 -> 271 ms while its p99, spikes of 0.4-1.4 s from the
    start, went 421 -> 882 ms); the p99 because a backlog can build in bursts."""
    t = (result or {}).get("e2e_thirds") or []
    if len(t) != 3:
        return None
    ratios = [(t[2][q] + HOLD_FLOOR_MS) / (t[0][q] + HOLD_FLOOR_MS) for q in ("p50", "p99")
              if t[0].get(q) is not None and t[2].get(q) is not None]
    return max(ratios) if ratios else None


def aggregate_steady(per_round: list) -> dict | None:
    """The steady-rate probe over the rounds: best (lowest) of each latency, like the latency table;
    `growth` is the median of the rounds' own growth (above). Not the best: a slow
    spell of the machine moves a round's growth either way (in the first third it hides a
    system falling behind), and a system that falls behind does so in most rounds."""
    ran = [r for r in per_round if r]
    if not ran:
        return None
    out: dict = {}
    for q in ("p50", "p99", "p99.9"):
        vals = [r["e2e"].get(q) for r in per_round if r]
        out[f"e2e_{q}_ms"] = _best(vals, higher_is_better=False)
    for i, third in ((0, "first"), (2, "last")):
        for q in ("p50", "p99"):
            out[f"{third}_third_{q}_ms"] = _best([(r.get("e2e_thirds") or [{}] * 3)[i].get(q) for r in ran],
                                                 higher_is_better=False)
    out["produce_p99_ms"] = _best([r["produce"].get("p99") for r in ran], higher_is_better=False)
    out["e2e_p99_rounds"] = [(r or {}).get("e2e", {}).get("p99") for r in per_round]
    out["e2e_p99_spread"] = _spread(out["e2e_p99_rounds"])
    out["growth_rounds"] = [growth(r) for r in per_round]
    grown = [g for g in out["growth_rounds"] if g is not None]
    out["growth"] = statistics.median(grown) if grown else None
    # Records the consumer never saw before its deadline: a system that fell too far behind.
    out["missing_max"] = max(r["records"] - r["e2e_samples"] for r in ran)
    out["rate"], out["seconds"] = ran[0]["rate"], ran[0].get("seconds")
    return out


def aggregate(runs: list, cfg: Config) -> dict:
    """Best over rounds of every metric (noise from a shared machine only makes things
    slower), with the relative spread (max-min)/max and the per-round values."""
    systems: dict = {}
    for name in cfg.systems:
        mine = [r for r in runs if r["system"] == name]
        s: dict = {"workloads": {}, "errors": [e for r in mine for e in r["errors"]], "rounds": len(mine)}
        for size, partitions in cfg.workloads:
            wl = workload_name(size, partitions)
            s["workloads"][wl] = aggregate_workload([r["workloads"].get(wl) for r in mine])
        if any(r.get("default_consumer") for r in mine):
            dc = [r.get("default_consumer") for r in mine]
            s["default_consumer"] = aggregate_workload(dc)
            # The rounds whose read lost a fetch.queue.backoff.ms second, of the rounds that read.
            gaps = [d["consume"].get("max_gap_ms") for d in dc if d and d.get("consume")]
            s["default_consumer"]["read_rounds"] = len(gaps)
            s["default_consumer"]["stalled_rounds"] = sum(g is not None and g >= STALL_GAP_MS for g in gaps)
        steady = aggregate_steady([r.get("steady") for r in mine])
        if steady is not None:
            s["steady"] = steady
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
            # The throughput workloads only (the default-consumer workload has its own table).
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
    phases = set(cfg.phases)
    for ours in KOP_SYSTEMS:
        if ours not in systems:
            continue
        for ref in REFERENCES:
            if ref not in systems:
                continue
            a, b = systems[ours], systems[ref]
            for phase in ("produce", "consume") if "throughput" in phases else ():
                per = []
                for w in cfg.workloads:
                    wl = workload_name(*w)
                    x, y = a["workloads"][wl][f"{phase}_rps"], b["workloads"][wl][f"{phase}_rps"]
                    per.append(x / y if x and y else None)
                ratios[f"{phase}_throughput:{ours}/{ref}"] = _geomean(per) if all(per) else None
            for kind in ("produce", "e2e") if "latency" in phases else ():
                for q in ("p50", "p99"):
                    x, y = a[f"{kind}_latency_{q}_ms"], b[f"{kind}_latency_{q}_ms"]
                    ratios[f"{kind}_{q}_latency:{ref}/{ours}"] = (y / x) if x and y else None
        ratios.update(kafka_only_ratios(systems, ours))
    return ratios


def kafka_only_ratios(systems: dict, ours: str) -> dict:
    """The default-consumer workload and the steady-rate probe, against Tansu (their only reference),
    and the steady probe's hold: 1 / growth, at most 1 (a last third faster than the first is
    noise, not better than holding); 0.5 = growth HOLD_GROWTH. Only what both systems measured
    in this run (phases can be left out with --phases)."""
    a, b = systems[ours], systems.get(KAFKA_REFERENCE) or {}
    ratios: dict = {}
    if "default_consumer" in a and "default_consumer" in b:
        x, y = a["default_consumer"]["consume_rps"], b["default_consumer"]["consume_rps"]
        ratios[f"default_consume_throughput:{ours}/{KAFKA_REFERENCE}"] = x / y if x and y else None
    if "steady" in a:
        if "steady" in b:
            for q in ("p50", "p99"):
                x, y = a["steady"][f"e2e_{q}_ms"], b["steady"][f"e2e_{q}_ms"]
                ratios[f"steady_e2e_{q}_latency:{KAFKA_REFERENCE}/{ours}"] = y / x if x and y else None
        g = a["steady"]["growth"]
        ratios[f"steady_hold:{ours}"] = min(1.0, 1 / g) if g else None
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


def default_consumer_pairs(systems: dict) -> dict:
    """The default-consumer workload's consume rate over Tansu's, round by round (median too), for
    each kop-fast system: {"kop-fast-kafka/tansu": {"rounds": [...], "median": m}}."""
    ref = systems.get(KAFKA_REFERENCE, {}).get("default_consumer")
    out: dict = {}
    if ref is None:
        return out
    for ours, s in systems.items():
        if ours == KAFKA_REFERENCE or "default_consumer" not in s:
            continue
        per = [x / y if x and y else None
               for x, y in zip(s["default_consumer"]["consume_rps_rounds"], ref["consume_rps_rounds"])]
        valid = [v for v in per if v is not None]
        out[f"{ours}/{KAFKA_REFERENCE}"] = {"rounds": per, "median": statistics.median(valid) if valid else None}
    return out
