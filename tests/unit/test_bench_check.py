"""The regression gate's comparison logic (bench/check.py) on synthetic results: no servers, no benchmarks."""

from __future__ import annotations

import json

import pytest

from bench import check


def _rows(baseline, now, **kw):
    return {r["name"]: r for r in check.compare({"ratios": baseline}, now, **kw)}


def test_within_tolerance_passes():
    rows = _rows({"produce_throughput:kop-fast-kafka/tansu": 1.0}, {"produce_throughput:kop-fast-kafka/tansu": 0.8})
    row = rows["produce_throughput:kop-fast-kafka/tansu"]
    assert row["verdict"] == "PASS"
    assert row["change"] == pytest.approx(-0.2)


def test_worse_than_tolerance_fails():
    rows = _rows({"codec_build:kop_fast/aiokafka": 2.0}, {"codec_build:kop_fast/aiokafka": 1.48})
    assert rows["codec_build:kop_fast/aiokafka"]["verdict"] == "FAIL"


def test_throughput_against_tansu_uses_the_noisy_tolerance():
    name = "consume_throughput:kop-fast-kafka/tansu"
    assert _rows({name: 1.0}, {name: 0.65})[name]["verdict"] == "PASS"  # -35%: within one commit's spread
    assert _rows({name: 1.0}, {name: 0.59})[name]["verdict"] == "FAIL"


def test_tolerance_is_an_option():
    base, now = {"codec_decode:kop_fast/aiokafka": 2.0}, {"codec_decode:kop_fast/aiokafka": 1.4}
    assert _rows(base, now)["codec_decode:kop_fast/aiokafka"]["verdict"] == "FAIL"
    assert _rows(base, now, tolerance=0.4)["codec_decode:kop_fast/aiokafka"]["verdict"] == "PASS"


def test_latency_ratios_use_the_latency_tolerance():
    name = "produce_p50_latency:tansu/kop-fast-kafka"
    assert _rows({name: 1.0}, {name: 0.6})[name]["verdict"] == "PASS"  # default latency tolerance 0.5
    assert _rows({name: 1.0}, {name: 0.6}, latency_tolerance=0.3)[name]["verdict"] == "FAIL"


def test_pulsar_direct_ratios_use_the_noisy_tolerance():
    name = "produce_throughput:kop-fast-pulsar/pulsar-direct"
    assert _rows({name: 1.0}, {name: 0.65})[name]["verdict"] == "PASS"  # default noisy tolerance 0.4
    assert _rows({name: 1.0}, {name: 0.55})[name]["verdict"] == "FAIL"
    assert _rows({name: 1.0}, {name: 0.65}, noisy_tolerance=0.3)[name]["verdict"] == "FAIL"


def test_much_better_is_reported_not_failed():
    name = "produce_throughput:kop-fast-kafka/pulsar-direct"
    assert _rows({name: 1.0}, {name: 2.0})[name]["verdict"] == "better"


def test_ungated_ratio_never_fails():
    name = "e2e_p99_latency:tansu/kop-fast-kafka"
    assert not check.is_gated(name)
    assert not check.is_gated("produce_p99_latency:tansu/kop-fast-kafka")
    assert _rows({name: 1.0}, {name: 0.1})[name]["verdict"] == "worse (info)"


def test_missing_gated_ratio_fails_and_new_ratio_is_new():
    rows = _rows({"codec_build:kop_fast/aiokafka": 2.0}, {"codec_verify:kop_fast/aiokafka": 10.0})
    assert rows["codec_build:kop_fast/aiokafka"]["verdict"] == "FAIL"
    assert rows["codec_verify:kop_fast/aiokafka"]["verdict"] == "new"


def test_codec_ratios_from_pytest_benchmark_json():
    data = {"benchmarks": [
        {"name": "test_decode_aiokafka", "group": "decode", "stats": {"min": 3e-4}},
        {"name": "test_decode_kop_fast", "group": "decode", "stats": {"min": 1e-4}},
        {"name": "test_build_aiokafka", "group": "build", "stats": {"min": 2e-4}},
        {"name": "test_build_kop_fast", "group": "build", "stats": {"min": 1e-4}},
        {"name": "test_build_kop_fast_tuples", "group": "build", "stats": {"min": 4e-4}},
        {"name": "test_lonely_kop_fast", "group": "lonely", "stats": {"min": 1e-4}},  # no reference: skipped
    ]}
    ratios = check.codec_ratios(data)
    assert ratios == {
        "codec_decode:kop_fast/aiokafka": pytest.approx(3.0),
        "codec_build:kop_fast/aiokafka": pytest.approx(2.0),
        "codec_build:kop_fast_tuples/aiokafka": pytest.approx(0.5),
    }


def test_new_errors_of_a_kop_fast_system_fail():
    rows = check.failure_rows({"e2e_failures": {"kop-fast-pulsar": 2}}, {"kop-fast-kafka": 1, "kop-fast-pulsar": 2})
    assert [r["name"] for r in rows] == ["e2e errors:kop-fast-kafka"]
    assert rows[0]["verdict"] == "FAIL"


def _e2e_result(produce_ratio: float, delay: float = 0) -> dict:
    return {"kind": "kop_fast-e2e", "machine": "test", "inject_delay_ms": delay, "config": {"quick": True},
            "ratios": {"produce_throughput:kop-fast-kafka/tansu": produce_ratio,
                       "e2e_p99_latency:tansu/kop-fast-kafka": 1.0},
            "systems": {"kop-fast-kafka": {"errors": []}, "tansu": {"errors": []}}}


def test_main_exit_codes(tmp_path, capsys):
    baseline, result = tmp_path / "baseline.json", tmp_path / "e2e.json"
    out = tmp_path / "out"
    common = ["--skip-codec", "--baseline", str(baseline), "--e2e-json", str(result), "--out", str(out)]

    result.write_text(json.dumps(_e2e_result(1.0)))
    assert check.main(common) == 2  # no baseline yet
    assert check.main(common + ["--update-baseline"]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["ratios"]["produce_throughput:kop-fast-kafka/tansu"] == 1.0

    result.write_text(json.dumps(_e2e_result(0.9)))
    assert check.main(common) == 0
    result.write_text(json.dumps(_e2e_result(0.5, delay=2)))
    assert check.main(common) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "produce_throughput:kop-fast-kafka/tansu" in text
    assert check.main(common + ["--update-baseline"]) == 2  # never store an injected slowdown
    assert check.main(common + ["--noisy-tolerance", "0.6"]) == 0


def test_a_baseline_from_several_e2e_results_stores_their_medians(tmp_path):
    baseline, out = tmp_path / "baseline.json", tmp_path / "out"
    paths = []
    for i, ratio in enumerate((1.0, 7.0, 1.1)):  # one outlier run, as on 2026-12-02
        paths.append(tmp_path / f"e2e-{i}.json")
        result = _e2e_result(ratio)
        if i == 1:
            result["systems"]["kop-fast-kafka"]["errors"] = ["one phase failed"]
        paths[-1].write_text(json.dumps(result))
    args = ["--skip-codec", "--baseline", str(baseline), "--out", str(out), "--e2e-json", *map(str, paths)]
    assert check.main(args + ["--update-baseline"]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["ratios"]["produce_throughput:kop-fast-kafka/tansu"] == 1.1
    assert stored["e2e_runs"] == 3 and "medians of 3 runs" in stored["how"]
    assert stored["e2e_failures"] == {"kop-fast-kafka": 1}  # the worst of the runs

    injected = tmp_path / "injected.json"
    injected.write_text(json.dumps(_e2e_result(1.0, delay=2)))
    assert check.main(args[:-3] + [str(paths[0]), str(injected), "--update-baseline"]) == 2
    assert json.loads(baseline.read_text())["ratios"]["produce_throughput:kop-fast-kafka/tansu"] == 1.1


def test_codec_ratios_are_the_median_of_the_runs():
    runs = [{"codec_build:kop_fast/aiokafka": 2.9, "codec_decode:kop_fast/aiokafka": 2.0},
            {"codec_build:kop_fast/aiokafka": 2.2, "codec_decode:kop_fast/aiokafka": None},
            {"codec_build:kop_fast/aiokafka": 2.3}]
    assert check.median_ratios(runs) == {"codec_build:kop_fast/aiokafka": 2.3, "codec_decode:kop_fast/aiokafka": 2.0}


def test_a_system_whose_client_process_fails_is_a_failed_run(tmp_path):
    from bench.config import Config
    from bench.orchestrate import run_system_isolated

    lines = []
    run = run_system_isolated("no-such-system", 1, Config.quick_config(), tmp_path,
                              lambda text, step=False: lines.append((text, step)))
    assert run["system"] == "no-such-system" and run["round"] == 1
    assert run["workloads"] == {}
    assert "exited with code" in run["errors"][0]
    assert lines and lines[-1][1] is True  # the round still counts as a step of the progress line


def test_paired_ratios_are_taken_within_each_round():
    from bench.config import Config
    from bench.stats import paired_ratios

    cfg = Config(workloads=[(100, 1)], systems=["kop-fast-kafka", "tansu"])

    def system(produce, consume):
        return {"workloads": {"100B x1p": {"produce_rps_rounds": produce, "consume_rps_rounds": consume}}}

    systems = {"kop-fast-kafka": system([1.0, 3.0, 2.0], [4.0, None, 4.0]),
               "tansu": system([2.0, 2.0, 1.0], [2.0, 1.0, 8.0])}
    pair = paired_ratios(systems, cfg)["kop-fast-kafka/tansu"]["100B x1p"]
    assert pair["produce"] == {"rounds": [0.5, 1.5, 2.0], "median": 1.5}
    # A failed round is left out of the median, not counted as zero.
    assert pair["consume"] == {"rounds": [2.0, None, 0.5], "median": 1.25}


def test_skipped_codec_ratios_are_neither_compared_nor_dropped(tmp_path, capsys):
    baseline, result = tmp_path / "baseline.json", tmp_path / "e2e.json"
    baseline.write_text(json.dumps({"ratios": {"codec_build:kop_fast/aiokafka": 2.3,
                                               "produce_throughput:kop-fast-kafka/tansu": 1.0}}))
    result.write_text(json.dumps(_e2e_result(1.0)))
    common = ["--skip-codec", "--baseline", str(baseline), "--e2e-json", str(result), "--out", str(tmp_path / "o")]
    assert check.main(common) == 0
    assert "codec_build" not in capsys.readouterr().out
    assert check.main(common + ["--update-baseline"]) == 0
    assert json.loads(baseline.read_text())["ratios"]["codec_build:kop_fast/aiokafka"] == 2.3


# -- the default-consumer workload and the steady-rate probe ------------------------------------------

def _steady(rate: int, seconds: float, e2e_ms: list) -> dict:
    """A steady-rate probe's result from end-to-end latencies (ms, in receipt order)."""
    from bench.config import Pace
    from bench.latency import latency_result

    ns = [int(v * 1e6) for v in e2e_ms]
    return latency_result(Pace(rate, seconds), produce_ns=[1_000_000] * len(ns), e2e_ns=ns)


def _holding(n: int = 3000, base: float = 3.0) -> list:
    return [base + (i % 50 == 0) * 10 for i in range(n)]  # 2% at base+10 ms, the same in every third


def _falling_behind(n: int = 3000) -> list:
    return [3.0 + i * 0.5 for i in range(n)]  # each record waits longer than the one before


def _round(system: str, round_no: int, steady: dict | None, default_rps: float | None) -> dict:
    run = {"system": system, "round": round_no, "workloads": {}, "errors": []}
    if steady is not None:
        run["steady"] = steady
    if default_rps is not None:
        # A read slower than 500,000 records/s here lost a backoff second (a gap of ~850 ms).
        run["default_consumer"] = {"produce": {"rps": 1e6, "mbps": 100.0, "server_cpu_s_per_M": 1.0},
                                   "consume": {"rps": default_rps, "mbps": default_rps * 1e-4,
                                               "server_cpu_s_per_M": 0.2, "client_thread_busy": 0.5,
                                               "max_gap_ms": 850.0 if default_rps < 5e5 else 12.0}}
    return run


def _new_phase_result(kop_steady: list, kop_default_rps: list, delay: float = 0) -> dict:
    """An e2e result made by the real pipeline (aggregate, compute_ratios) from synthetic rounds:
    kop-fast-kafka with the given steady latencies / default-consumer rates per round, Tansu fixed."""
    from bench.config import Config
    from bench.stats import aggregate, compute_ratios, default_consumer_pairs

    cfg = Config.quick_config()
    cfg.systems = ["kop-fast-kafka", "tansu"]
    cfg.phases = ["default-consumer", "steady"]
    runs = []
    for i, (lat, rps) in enumerate(zip(kop_steady, kop_default_rps), 1):
        runs.append(_round("kop-fast-kafka", i, _steady(5000, 10, lat), rps))
        runs.append(_round("tansu", i, _steady(5000, 10, _holding(base=150.0)), 400_000.0))
    systems = aggregate(runs, cfg)
    return {"kind": "kop_fast-e2e", "started": "now", "machine": "test", "inject_delay_ms": delay,
            "config": {**cfg.__dict__, "quick": True}, "systems": systems, "ratios": compute_ratios(systems, cfg),
            "paired_ratios": {}, "default_consumer_pairs": default_consumer_pairs(systems), "runs": runs}


def test_latency_result_splits_the_run_in_thirds():
    from bench.stats import growth

    holding = _steady(5000, 10, _holding())
    assert holding["records"] == 50_000 and holding["e2e_samples"] == 3000
    assert [t["p99"] for t in holding["e2e_thirds"]] == pytest.approx([13.0, 13.0, 13.0])
    assert growth(holding) == pytest.approx(1.0)
    behind = _steady(5000, 10, _falling_behind())
    assert growth(behind) > 2  # last third p99 ~1500 ms, first ~500 ms
    # A p99 of 10 ms in the first third and 30 ms in the last is a busy machine, not a backlog.
    hiccup = _steady(5000, 10, [10.0] * 1000 + [5.0] * 1000 + [30.0] * 1000)
    assert 1.3 < growth(hiccup) < 1.4  # (30 + 50) / (10 + 50)
    # Every record later and later while the spikes stay as they were (kop-fast-pulsar, 60 s: p50
    # 17 -> 271 ms, p99 421 -> 882 ms): the p50 shows the backlog.
    spikes = [1000.0 if i % 20 == 0 else 0.0 for i in range(3000)]
    creeping = _steady(5000, 10, [10.0 + i * 0.1 + s for i, s in enumerate(spikes)])
    t = creeping["e2e_thirds"]
    assert (t[2]["p99"] + 50) / (t[0]["p99"] + 50) < 1.3 and growth(creeping) > 2
    assert growth(_steady(5000, 10, [1.0])) is None  # too few samples for thirds


def test_new_phases_become_ratios_against_tansu():
    result = _new_phase_result([_holding(), _falling_behind(), _holding(base=4.0)], [1.2e6, 0.8e6, None])
    r = result["ratios"]
    assert r["default_consume_throughput:kop-fast-kafka/tansu"] == pytest.approx(3.0)  # best 1.2M / 400k
    assert r["steady_e2e_p50_latency:tansu/kop-fast-kafka"] == pytest.approx(150.0 / 3.0)
    # Growth is each round's own last/first third; the lowest round counts (a slow spell of the
    # machine in one round does not make a system "fall behind").
    assert r["steady_hold:kop-fast-kafka"] == pytest.approx(1.0)
    steady = result["systems"]["kop-fast-kafka"]["steady"]
    assert steady["growth_rounds"][1] > 2 and steady["growth"] == pytest.approx(1.0)
    dc = result["systems"]["kop-fast-kafka"]["default_consumer"]
    assert (dc["stalled_rounds"], dc["read_rounds"]) == (0, 2)  # the third round did not read
    assert result["systems"]["tansu"]["default_consumer"]["stalled_rounds"] == 3
    pairs = result["default_consumer_pairs"]["kop-fast-kafka/tansu"]
    assert pairs["rounds"] == [pytest.approx(3.0), pytest.approx(2.0), None]
    assert pairs["median"] == pytest.approx(2.5)
    # Only the phases that ran give ratios: no throughput or latency-phase names here.
    assert not any(k.startswith(("produce_", "consume_", "e2e_")) for k in r)


def test_the_report_shows_the_new_phases():
    from bench.report import markdown

    text = markdown(_new_phase_result([_falling_behind()] * 3, [1.2e6] * 3))
    assert "## Default consumer: 300,000 records of 100 B, 1 partition" in text
    assert "## Steady rate: end-to-end latency at 5,000 records/s for 10 s" in text
    assert "**falls behind**" in text
    assert "| kop-fast-kafka | 1,000,000 | 1,200,000 ±0% | 0 of 3 | 3.00 |" in text
    assert "## Produce throughput" not in text  # --phases left the throughput workloads out


NEW_GATED = {"default_consume_throughput:kop-fast-kafka/tansu": "noisy",
             "steady_e2e_p50_latency:tansu/kop-fast-kafka": "latency",
             "steady_hold:kop-fast-kafka": "latency"}


def test_which_new_ratios_are_gated():
    for name, cls in NEW_GATED.items():
        assert check.tolerance_class(name) == cls, name
    # Shown, not gated: p99s, and kop-fast-pulsar (which falls behind at 5,000 records/s today).
    for name in ("steady_e2e_p99_latency:tansu/kop-fast-kafka", "steady_hold:kop-fast-pulsar",
                 "default_consume_throughput:kop-fast-pulsar/tansu", "steady_e2e_p50_latency:tansu/kop-fast-pulsar"):
        assert not check.is_gated(name), name
    # With a baseline of 1 and the latency tolerance of 0.5 the hold fails where the report says
    # "falls behind": growth above HOLD_GROWTH (2).
    name = "steady_hold:kop-fast-kafka"
    assert _rows({name: 1.0}, {name: 1 / 1.9})[name]["verdict"] == "PASS"
    assert _rows({name: 1.0}, {name: 1 / 2.1})[name]["verdict"] == "FAIL"


def test_gate_catches_a_slowdown_in_the_new_phases(tmp_path, capsys):
    """What an injected delay does to the new phases (bench/slow_kop_fast.py): kop-fast falls behind
    at 5,000 records/s and its default consumer slows down; the gate fails on those ratios alone."""
    baseline, result = tmp_path / "baseline.json", tmp_path / "e2e.json"
    common = ["--skip-codec", "--baseline", str(baseline), "--e2e-json", str(result), "--out", str(tmp_path / "o")]
    result.write_text(json.dumps(_new_phase_result([_holding()] * 3, [1.2e6] * 3)))
    assert check.main(common + ["--update-baseline"]) == 0
    result.write_text(json.dumps(_new_phase_result([_holding(base=3.5)] * 3, [1.0e6] * 3)))
    assert check.main(common) == 0  # within tolerance
    capsys.readouterr()
    slow = [[30.0 + v for v in _falling_behind()]] * 3
    result.write_text(json.dumps(_new_phase_result(slow, [0.3e6] * 3, delay=2)))
    assert check.main(common) == 1
    failed = {r["name"] for r in json.loads((tmp_path / "o" / "check-latest.json").read_text())["rows"]
              if r["verdict"] == "FAIL"}
    assert failed == set(NEW_GATED)


def test_phases_and_steady_duration_on_the_command_line():
    from bench.e2e import parse_args
    from bench.orchestrate import round_limit_s

    cfg, _ = parse_args(["--quick", "--phases", "steady", "default-consumer"])
    assert cfg.phases == ["default-consumer", "steady"]  # in the order a round runs them
    assert cfg.steady_seconds == 10 and cfg.steady_pace().records == 50_000
    full, _ = parse_args(["--steady-seconds", "60", "--steady-rate", "2000"])
    assert full.steady_pace().records == 120_000 and full.phases[-1] == "steady"
    assert round_limit_s(full) > round_limit_s(cfg) + 50  # the paced minute is part of the bound


def test_server_cpu_is_kept_by_process_and_averaged_over_the_rounds():
    from bench.orchestrate import _server_cpu
    from bench.report import default_consumer_section
    from bench.stats import aggregate_workload

    phase: dict = {}
    _server_cpu(phase, {"kop-fast": 1.0, "pulsar-lite": 0.5}, {"kop-fast": 1.3, "pulsar-lite": 0.6}, 1_000_000)
    assert phase["server_cpu_s_per_M"] == pytest.approx(0.4)
    assert phase["server_cpu_s_per_M_by_process"] == {"kop-fast": pytest.approx(0.3), "pulsar-lite": pytest.approx(0.1)}

    def one_round(kop: float, lite: float) -> dict:
        return {p: {"rps": 1e6, "mbps": 100.0, "server_cpu_s_per_M": kop + lite,
                    "server_cpu_s_per_M_by_process": {"kop-fast": kop, "pulsar-lite": lite}}
                for p in ("produce", "consume")}

    w = aggregate_workload([one_round(0.3, 0.1), one_round(0.5, 0.3), {}])  # the third round failed
    assert w["produce_server_cpu_s_per_M"] == pytest.approx(0.4)  # the best round's sum
    assert w["produce_server_cpu_mean_by_process"] == {"kop-fast": pytest.approx(0.4), "pulsar-lite": pytest.approx(0.2)}
    result = {"config": {"default_consumer_records": 300_000}, "default_consumer_pairs": {},
              "systems": {"kop-fast-kafka": {"default_consumer": w}}}
    text = "\n".join(default_consumer_section(result))
    assert "kop-fast-kafka: kop-fast 0.40 / 0.40, pulsar-lite 0.20 / 0.20." in text
