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
    rows = _rows({"consume_throughput:kop-fast-kafka/tansu": 1.0}, {"consume_throughput:kop-fast-kafka/tansu": 0.74})
    assert rows["consume_throughput:kop-fast-kafka/tansu"]["verdict"] == "FAIL"


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
    assert check.main(common + ["--tolerance", "0.6"]) == 0


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
