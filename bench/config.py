"""What an end-to-end benchmark run measures: the systems, workloads, record counts and phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.systems import ALL_SYSTEMS

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Ratios the report (and bench/check.py) compares; each is "higher is better for kop-fast".
KOP_SYSTEMS = ("kop-fast-kafka", "kop-fast-pulsar")
REFERENCES = ("tansu", "pulsar-direct")
# The systems whose records go through a Pulsar producer per record (see Config.records).
PULSAR_PATH = ("kop-fast-pulsar", "pulsar-direct")
# What a round measures (`--phases`): the throughput workloads, the fixed-rate latency phase,
# the default-consumer workload and the steady-rate probe (the last two: Kafka systems only).
PHASES = ("throughput", "default-consumer", "latency", "steady")
# The reference of the default-consumer workload and of the steady-rate probe: both are
# librdkafka against a Kafka server, so pulsar-direct has neither.
KAFKA_REFERENCE = "tansu"
DEFAULT_CONSUMER = (100, 1)  # record size and partitions of the default-consumer workload


@dataclass(frozen=True)
class Pace:
    """A fixed-rate latency run: `rate` records/s of `size` bytes for `seconds`, linger.ms."""
    rate: int
    seconds: float
    size: int = 100
    linger_ms: int = 1

    @property
    def records(self) -> int:
        return int(self.rate * self.seconds)


@dataclass
class Config:
    # Records per 100-byte workload (1 KiB workloads use a quarter). The systems that take
    # the Kafka wire format at client speed (kop-fast kafka format, Tansu) move 100 B records
    # at 1-2 M/s: 500,000 of them made 0.3 s phases, and one scheduler hiccup on a shared
    # 2-core machine moved a ratio by 25%. The Pulsar-path pair (kop-fast pulsar format,
    # pulsar-client direct) runs at 30-40 k/s, where 500,000 is already a 12 s phase.
    # Throughputs are rates, so ratios across the pairs stay comparable.
    records: int = 2_000_000
    pulsar_path_records: int = 500_000
    workloads: list = field(default_factory=lambda: [(100, 1), (100, 8), (1024, 1), (1024, 8)])
    rounds: int = 2
    systems: list = field(default_factory=lambda: list(ALL_SYSTEMS))
    linger_ms: int = 5
    latency_rate: int = 10_000
    latency_seconds: float = 5.0
    latency_size: int = 100
    latency_linger_ms: int = 1
    # The steady-rate probe: a long run at a rate every Kafka system should sustain, to see
    # whether end-to-end latency holds (the consumer keeps up) or grows (it falls behind).
    steady_rate: int = 5_000
    steady_seconds: float = 60.0
    steady_linger_ms: int = 1
    # The default-consumer workload: 100 B x 1 partition, read back with librdkafka's defaults
    # (no CONSUMER_TUNING); 0 leaves it out.
    default_consumer_records: int = 300_000
    phases: list = field(default_factory=lambda: list(PHASES))
    phase_timeout_s: float = 120.0
    quick: bool = False
    librdkafka_defaults: bool = False  # consume without CONSUMER_TUNING

    @classmethod
    def quick_config(cls) -> "Config":
        # 300,000 records: a 100-byte produce phase of ~0.2 s. With 100,000 (~0.07 s) the
        # kafka-format produce ratio to Tansu moved by 30% between two gate runs of the same code.
        return cls(records=300_000, pulsar_path_records=300_000, workloads=[(100, 1), (1024, 8)], rounds=3,
                   latency_seconds=2.0, steady_seconds=10.0, phase_timeout_s=60.0, quick=True)

    def latency_pace(self) -> Pace:
        return Pace(self.latency_rate, self.latency_seconds, self.latency_size, self.latency_linger_ms)

    def steady_pace(self) -> Pace:
        return Pace(self.steady_rate, self.steady_seconds, self.latency_size, self.steady_linger_ms)

    def records_for(self, size: int, system: str = "") -> int:
        n = self.pulsar_path_records if system.partition("@")[0] in PULSAR_PATH else self.records
        return n if size <= 100 else max(1, n // 4)


def workload_name(size: int, partitions: int) -> str:
    return f"{'1KiB' if size == 1024 else f'{size}B'} x{partitions}p"
