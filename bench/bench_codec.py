"""kop_fast's record codec against aiokafka's Cython record code, on the same
batches in the same run.

pytest-benchmark (groups "decode", "build", "verify", "decode_keys10",
"decode_keys32", "decode_keys100", "build_keys10"; the ratios are printed at
the end)::

    python -m pytest bench/bench_codec.py

or a plain timing run that prints the ratios and checks the targets
(decode and build >= 2x aiokafka, verify_batches >= 10 GB/s)::

    python -m bench.bench_codec --ratios

The workloads:

decode  one batch of 1000 records with 100-byte values; aiokafka validates
        the CRC and iterates its records, kop_fast runs decode_batches (which
        checks the CRC); both read every record's value.
build   the same 1000 (offset, timestamp, value) rows into one uncompressed
        batch; aiokafka appends each to a DefaultRecordBatchBuilder and
        builds, kop_fast makes a Record per row and calls encode_batch.
        ("build-tuples" passes plain tuples, "build-prebuilt" existing
        Records, to show where the time goes.)
verify  verify_batches on a 1 MiB batch of 1 KiB records (structure, record
        length tiling and CRC32C); aiokafka's validate_crc on the same batch
        for reference.
decode_keysN
        like decode, but every record has an N-byte key (N = 10, 32, 100)
        and two headers: ("trace-id", 16 bytes of its own) and
        ("content-type", b"application/json"); both sides read every
        record's key, value and headers.
build_keys10
        the rows of decode_keys10 built into one batch: aiokafka appends
        (offset, timestamp, key, value, headers) (headers as the list it
        requires), kop_fast makes
        Record(offset, timestamp, key, value, headers) per row and calls
        encode_batch.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import pytest
from aiokafka.record._crecords import DefaultRecordBatch, DefaultRecordBatchBuilder

from kop_fast import codec

TS = 1_700_000_000_000
N_RECORDS = 1000
VALUE_SIZE = 100
TARGET_SPEEDUP = 2.0
TARGET_VERIFY_GBPS = 10.0

ROWS = [(i, TS + i, os.urandom(VALUE_SIZE)) for i in range(N_RECORDS)]
NO_HEADERS: list = []


def aiokafka_build(rows=ROWS):
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
    append = builder.append
    for offset, timestamp, value in rows:
        append(offset, timestamp, None, value, NO_HEADERS)
    return builder.build()


def kop_build(rows=ROWS, Record=codec.Record, encode_batch=codec.encode_batch):
    return encode_batch([Record(offset, timestamp, None, value) for offset, timestamp, value in rows])


def kop_build_tuples(rows=ROWS, encode_batch=codec.encode_batch):
    return encode_batch([(offset, timestamp, None, value, ()) for offset, timestamp, value in rows])


PREBUILT = [codec.Record(o, t, None, v) for o, t, v in ROWS]

# records with keys and headers
KEY_SIZES = (10, 32, 100)
CONTENT_TYPE = ("content-type", b"application/json")


def keyed_rows(key_size: int) -> list:
    return [
        (i, TS + i, os.urandom(key_size), os.urandom(VALUE_SIZE),
         (("trace-id", os.urandom(16)), CONTENT_TYPE))
        for i in range(N_RECORDS)
    ]


KEYED_ROWS = {size: keyed_rows(size) for size in KEY_SIZES}
# aiokafka's builder takes headers as a list only; kop_fast's Record holds a tuple
AIOKAFKA_KEYED_ROWS = {size: [(*row[:4], list(row[4])) for row in rows]
                       for size, rows in KEYED_ROWS.items()}


def aiokafka_build_keyed(rows=AIOKAFKA_KEYED_ROWS[10]):
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
    append = builder.append
    for offset, timestamp, key, value, headers in rows:
        append(offset, timestamp, key, value, headers)
    return builder.build()


def kop_build_keyed(rows=KEYED_ROWS[10], Record=codec.Record, encode_batch=codec.encode_batch):
    return encode_batch([Record(offset, timestamp, key, value, headers)
                         for offset, timestamp, key, value, headers in rows])


KEYED_BATCH = {size: bytes(aiokafka_build_keyed(rows)) for size, rows in AIOKAFKA_KEYED_ROWS.items()}
for _size, _rows in KEYED_ROWS.items():
    assert kop_build_keyed(_rows) == KEYED_BATCH[_size], "kop_fast and aiokafka must build the same bytes"


def kop_build_prebuilt(records=PREBUILT, encode_batch=codec.encode_batch):
    return encode_batch(records)


BATCH = bytes(aiokafka_build())
assert kop_build() == BATCH, "kop_fast and aiokafka must build the same bytes"


def aiokafka_decode(buf=BATCH):
    batch = DefaultRecordBatch(buf)
    if not batch.validate_crc():
        raise AssertionError("bad CRC")
    for record in batch:
        record.value


def kop_decode(buf=BATCH, decode_batches=codec.decode_batches):
    for batch in decode_batches(buf):
        for record in batch.records:
            record.value


def aiokafka_decode_keyed(buf):
    batch = DefaultRecordBatch(buf)
    if not batch.validate_crc():
        raise AssertionError("bad CRC")
    for record in batch:
        record.key
        record.value
        record.headers


def kop_decode_keyed(buf, decode_batches=codec.decode_batches):
    for batch in decode_batches(buf):
        for record in batch.records:
            record.key
            record.value
            record.headers


def _decoding(fn, size):
    buf = KEYED_BATCH[size]
    return lambda: fn(buf)


BIG_BATCH = codec.encode_batch(
    [codec.Record(i, TS, None, os.urandom(1024 - 8)) for i in range(1024)]
)


def kop_verify(buf=BIG_BATCH, verify_batches=codec.verify_batches):
    return verify_batches(buf)


def aiokafka_validate_crc(buf=BIG_BATCH):
    return DefaultRecordBatch(buf).validate_crc()


# ---------------------------------------------------------------------------
# pytest-benchmark

_results: dict[str, float] = {}


def _run(benchmark, name, fn):
    benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _results[name] = stats.stats.min


@pytest.mark.benchmark(group="decode")
def test_decode_aiokafka(benchmark):
    _run(benchmark, "decode/aiokafka", aiokafka_decode)


@pytest.mark.benchmark(group="decode")
def test_decode_kop_fast(benchmark):
    _run(benchmark, "decode/kop_fast", kop_decode)


@pytest.mark.benchmark(group="build")
def test_build_aiokafka(benchmark):
    _run(benchmark, "build/aiokafka", aiokafka_build)


@pytest.mark.benchmark(group="build")
def test_build_kop_fast(benchmark):
    _run(benchmark, "build/kop_fast", kop_build)


@pytest.mark.benchmark(group="build")
def test_build_kop_fast_tuples(benchmark):
    _run(benchmark, "build-tuples/kop_fast", kop_build_tuples)


@pytest.mark.benchmark(group="build")
def test_build_kop_fast_prebuilt(benchmark):
    _run(benchmark, "build-prebuilt/kop_fast", kop_build_prebuilt)


@pytest.mark.benchmark(group="verify")
def test_verify_kop_fast(benchmark):
    _run(benchmark, "verify/kop_fast", kop_verify)


@pytest.mark.benchmark(group="verify")
def test_verify_aiokafka_validate_crc(benchmark):
    _run(benchmark, "verify/aiokafka", aiokafka_validate_crc)


@pytest.mark.benchmark(group="decode_keys10")
def test_decode_keys10_aiokafka(benchmark):
    _run(benchmark, "decode_keys10/aiokafka", _decoding(aiokafka_decode_keyed, 10))


@pytest.mark.benchmark(group="decode_keys10")
def test_decode_keys10_kop_fast(benchmark):
    _run(benchmark, "decode_keys10/kop_fast", _decoding(kop_decode_keyed, 10))


@pytest.mark.benchmark(group="decode_keys32")
def test_decode_keys32_aiokafka(benchmark):
    _run(benchmark, "decode_keys32/aiokafka", _decoding(aiokafka_decode_keyed, 32))


@pytest.mark.benchmark(group="decode_keys32")
def test_decode_keys32_kop_fast(benchmark):
    _run(benchmark, "decode_keys32/kop_fast", _decoding(kop_decode_keyed, 32))


@pytest.mark.benchmark(group="decode_keys100")
def test_decode_keys100_aiokafka(benchmark):
    _run(benchmark, "decode_keys100/aiokafka", _decoding(aiokafka_decode_keyed, 100))


@pytest.mark.benchmark(group="decode_keys100")
def test_decode_keys100_kop_fast(benchmark):
    _run(benchmark, "decode_keys100/kop_fast", _decoding(kop_decode_keyed, 100))


@pytest.mark.benchmark(group="build_keys10")
def test_build_keys10_aiokafka(benchmark):
    _run(benchmark, "build_keys10/aiokafka", aiokafka_build_keyed)


@pytest.mark.benchmark(group="build_keys10")
def test_build_keys10_kop_fast(benchmark):
    _run(benchmark, "build_keys10/kop_fast", kop_build_keyed)


def test_zz_ratio_summary(capsys):
    """Runs last in this module: prints the ratios of the minimum times."""
    if not _results:
        pytest.skip("benchmarks disabled")
    with capsys.disabled():
        print()
        print(summary(_results))


# ---------------------------------------------------------------------------
# ratios


# the keyed decode rows are held to the same >= 2x target as decode and build
GATED_KEYED = tuple(f"decode_keys{size}" for size in KEY_SIZES)


def summary(results: dict[str, float]) -> str:
    lines = [
        f"kop_fast codec ({codec.IMPLEMENTATION}, CRC32C "
        f"{'SSE4.2' if codec.CRC32C_HARDWARE else 'software'}) vs aiokafka (Cython), min times:"
    ]
    for name in ("decode", "build", "build-tuples", "build-prebuilt", *GATED_KEYED, "build_keys10"):
        ours = results.get(f"{name}/kop_fast")
        theirs = results.get(f"{name}/aiokafka", results.get("build/aiokafka"))
        if ours is None or theirs is None:
            continue
        ratio = theirs / ours
        verdict = ""
        if name in ("decode", "build", *GATED_KEYED):
            verdict = "  PASS" if ratio >= TARGET_SPEEDUP else f"  FAIL (< {TARGET_SPEEDUP}x)"
        lines.append(
            f"  {name:15s} kop_fast {ours * 1e6:8.1f} us  aiokafka {theirs * 1e6:8.1f} us"
            f"  -> {ratio:5.2f}x{verdict}"
        )
    ours = results.get("verify/kop_fast")
    if ours is not None:
        gbps = len(BIG_BATCH) / ours / 1e9
        verdict = "PASS" if gbps >= TARGET_VERIFY_GBPS else f"FAIL (< {TARGET_VERIFY_GBPS} GB/s)"
        line = f"  verify          {len(BIG_BATCH)} bytes in {ours * 1e6:.1f} us -> {gbps:.1f} GB/s  {verdict}"
        theirs = results.get("verify/aiokafka")
        if theirs is not None:
            line += f"  (aiokafka validate_crc {len(BIG_BATCH) / theirs / 1e9:.1f} GB/s)"
        lines.append(line)
    return "\n".join(lines)


def _best(fn, number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def measure(repeat: int = 15) -> dict[str, float]:
    """Interleaved min-of-repeats timings (interleaving spreads the noise of a
    shared machine over both sides)."""
    pairs = {
        "decode/aiokafka": (aiokafka_decode, 100),
        "decode/kop_fast": (kop_decode, 100),
        "build/aiokafka": (aiokafka_build, 100),
        "build/kop_fast": (kop_build, 100),
        "build-tuples/kop_fast": (kop_build_tuples, 100),
        "build-prebuilt/kop_fast": (kop_build_prebuilt, 100),
        "verify/kop_fast": (kop_verify, 200),
        "verify/aiokafka": (aiokafka_validate_crc, 20),
        **{f"decode_keys{size}/{side}": (_decoding(fn, size), 50)
           for size in KEY_SIZES
           for side, fn in (("aiokafka", aiokafka_decode_keyed), ("kop_fast", kop_decode_keyed))},
        "build_keys10/aiokafka": (aiokafka_build_keyed, 50),
        "build_keys10/kop_fast": (kop_build_keyed, 50),
    }
    results = {name: float("inf") for name in pairs}
    gc.collect()
    for _ in range(repeat):
        for name, (fn, number) in pairs.items():
            results[name] = min(results[name], _best(fn, number, 1))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", action="store_true", help="time and print the ratios")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    if not args.ratios:
        parser.print_help()
        return 0
    results = measure(args.repeat)
    text = summary(results)
    print(text)
    return 1 if "FAIL" in text else 0


if __name__ == "__main__":
    sys.exit(main())
