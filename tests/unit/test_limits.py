"""server/limits.py on its own: connection counts, the rate-limited refusal line, pending Produce
bytes and holds, the idle sweep; and the four options' parsing."""

from __future__ import annotations

import logging
import resource

import pytest

from kop_fast.config import ConfigError, Settings, build_settings
from kop_fast.server import limits as limits_module
from kop_fast.server.limits import PER_IP, REFUSAL_LOG_INTERVAL_S, TOTAL, ConnectionLimits, ensure_fd_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock=None, **options) -> ConnectionLimits:
    return ConnectionLimits(build_settings(options, environ={}), clock=clock or Clock())


def test_defaults_and_sources():
    s = Settings()
    assert (s.max_connections, s.max_connections_per_ip) == (10_000, 1_000)
    assert s.connections_max_idle_ms == 600_000
    assert s.max_pending_produce_bytes == 256 << 20
    env = {"KOP_FAST_MAX_CONNECTIONS": "50", "KOP_FAST_CONNECTIONS_MAX_IDLE_MS": "0"}
    s = build_settings({"max_connections_per_ip": "5", "max_pending_produce_bytes": "1048576"}, environ=env)
    assert (s.max_connections, s.max_connections_per_ip, s.connections_max_idle_ms,
            s.max_pending_produce_bytes) == (50, 5, 0, 1 << 20)


@pytest.mark.parametrize("flags", [
    {"max_connections": "0"}, {"max_connections": "many"}, {"max_connections_per_ip": "-1"},
    {"connections_max_idle_ms": "-1"}, {"max_pending_produce_bytes": "0"}, {"max_pending_produce_bytes": "1.5"},
])
def test_invalid_values(flags):
    with pytest.raises(ConfigError, match=next(iter(flags)).replace("_", "-")):
        build_settings(flags, environ={})


def test_total_and_per_ip_counts():
    limits = make(max_connections=3, max_connections_per_ip=2)
    assert limits.admit("10.0.0.1", "10.0.0.1:1") and limits.admit("10.0.0.1", "10.0.0.1:2")
    assert not limits.admit("10.0.0.1", "10.0.0.1:3")  # per IP
    assert limits.admit("10.0.0.2", "10.0.0.2:1")
    assert not limits.admit("10.0.0.3", "10.0.0.3:1")  # total
    assert limits.refused == {TOTAL: 1, PER_IP: 1} and limits.open == 3
    limits.release("10.0.0.1")
    assert limits.open_from("10.0.0.1") == 1 and limits.admit("10.0.0.3", "10.0.0.3:2")
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        limits.release(ip)
    assert limits.open == 0 and limits._per_ip == {}  # nothing kept for IPs that left


def test_refusals_log_one_warning_per_interval_with_the_count(caplog):
    clock = Clock()
    limits = make(clock, max_connections=1)
    limits.admit("a", "a:1")
    with caplog.at_level(logging.INFO, logger="kop_fast.limits"):
        for port in range(2, 102):  # a flood: 100 refusals
            assert not limits.admit("b", f"b:{port}")
            clock.now += 0.01
        clock.now += REFUSAL_LOG_INTERVAL_S
        limits.admit("c", "c:1")
    lines = [r for r in caplog.records if r.name == "kop_fast.limits"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    first, second = (r.getMessage() for r in lines)
    assert "b:2" in first and "--max-connections 1" in first and "more refused" not in first
    assert "c:1" in second and "99 more refused since the previous such line" in second
    assert limits.refused[TOTAL] == 101


class FakeConnection:
    def __init__(self, busy: bool = False) -> None:
        self.reads = self.reads_seen = 0
        self.idle_since = 0.0
        self.busy = busy
        self.closed_after: float | None = None
        self.released = 0

    def close_idle(self, idle_s: float) -> None:
        self.closed_after = idle_s

    def release_hold(self) -> None:
        self.released += 1


def test_pending_produce_bytes_hold_and_release():
    limits = make(max_pending_produce_bytes=100)
    a, b = FakeConnection(), FakeConnection()
    assert not limits.produce_handed(60)
    assert limits.produce_handed(40)  # at the bound
    limits.hold(a)
    assert limits.produce_handed(10)  # one request past it, from another connection
    limits.hold(b)
    limits.produce_settled(10)
    assert (a.released, b.released) == (0, 0)  # 100: still at the bound
    limits.produce_settled(1)
    assert (a.released, b.released) == (1, 1) and limits.held == set()
    limits.produce_settled(99)
    assert limits.pending_produce == 0 and (a.released, b.released) == (1, 1)


def test_idle_sweep_closes_only_connections_idle_for_the_whole_timeout():
    clock = Clock()
    limits = make(clock, connections_max_idle_ms=1000)
    assert limits.sweep_interval() == 0.25
    quiet, chatty, waiting = FakeConnection(), FakeConnection(), FakeConnection(busy=True)
    conns = {quiet, chatty, waiting}
    for c in conns:
        c.idle_since = clock.now
    for _ in range(3):  # 0.75 s: nobody closed yet
        clock.now += 0.25
        chatty.reads += 1
        assert limits.sweep(conns) == 0
    clock.now += 0.25
    chatty.reads += 1
    assert limits.sweep(conns) == 1
    assert quiet.closed_after == pytest.approx(1.0)
    assert chatty.closed_after is None and waiting.closed_after is None  # activity, a request in flight
    assert limits.idle_closed == 1


def test_idle_timeout_zero_never_sweeps():
    assert make(connections_max_idle_ms=0).sweep_interval() is None
    assert make().sweep_interval() == limits_module.MAX_SWEEP_INTERVAL_S


def test_fd_limit_raised_to_fit_max_connections(monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda _r, limits: calls.append(limits))
    ensure_fd_limit(2000)
    assert calls == [(2000 + limits_module.SPARE_FDS, 4096)]
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="kop_fast.limits"):
        ensure_fd_limit(10_000)  # the hard limit is lower: raised as far as it goes, and said
    assert calls == [(4096, 4096)]
    assert "open files limit 4096 is below --max-connections 10000" in caplog.text
