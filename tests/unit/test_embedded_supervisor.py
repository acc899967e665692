"""BrokerSupervisor against a stand-in broker (a `sleep` child): restarts, giving up, an expected stop."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from kop_fast.embedded import EmbeddedPulsarError
from kop_fast.embedded_supervisor import BrokerSupervisor


class FakeBroker:
    url = "pulsar://127.0.0.1:1"
    log_path = "fake.log"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures  # restarts that fail before one succeeds
        self.restart_calls = 0
        self.process = subprocess.Popen(["sleep", "60"])

    def restart(self, timeout: float) -> str:
        self.restart_calls += 1
        if self.restart_calls <= self.failures:
            raise EmbeddedPulsarError("pulsar-lite exited with code 1")
        self.process = subprocess.Popen(["sleep", "60"])
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_until(predicate, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.timeout(30)
def test_a_dead_broker_is_restarted_and_supervised_again(caplog):
    broker = FakeBroker(failures=1)
    given_up = []
    supervisor = BrokerSupervisor(broker, given_up.append, first_delay_s=0.01)
    supervisor.start()
    try:
        for n in (1, 2):
            broker.process.kill()
            wait_until(lambda: supervisor.restarts == n)
            assert broker.process.poll() is None
    finally:
        supervisor.stop()
        broker.stop()
    assert broker.restart_calls == 3 and not given_up
    assert "restarting the embedded pulsar-lite failed (try 1 of 5)" in caplog.text
    assert "exited with code -9" in caplog.text


@pytest.mark.timeout(30)
def test_it_gives_up_after_its_tries_with_a_reason():
    broker = FakeBroker(failures=99)
    given_up = threading.Event()
    reasons = []
    supervisor = BrokerSupervisor(broker, lambda r: (reasons.append(r), given_up.set()), tries=3, first_delay_s=0.01)
    supervisor.start()
    broker.process.kill()
    assert given_up.wait(10)
    assert broker.restart_calls == 3
    assert reasons == ["the embedded pulsar-lite died and could not be restarted (3 tries): "
                       "pulsar-lite exited with code 1"]


@pytest.mark.timeout(30)
def test_a_stop_by_kop_fast_is_not_restarted():
    broker = FakeBroker()
    given_up = []
    supervisor = BrokerSupervisor(broker, given_up.append, first_delay_s=0.01)
    supervisor.start()
    supervisor.stop()
    broker.stop()
    supervisor._thread.join(5)
    assert not supervisor._thread.is_alive()
    assert broker.restart_calls == 0 and not given_up


@pytest.mark.timeout(30)
def test_up_is_false_from_a_death_until_the_restart():
    broker = FakeBroker(failures=2)  # down for 0.2 + 0.4 + 0.8 s of backoff
    supervisor = BrokerSupervisor(broker, lambda reason: None, first_delay_s=0.2)
    assert supervisor.up and supervisor.restarts == 0
    supervisor.start()
    try:
        broker.process.kill()
        wait_until(lambda: not supervisor.up)
        assert supervisor.restarts == 0
        wait_until(lambda: supervisor.restarts == 1)
        assert supervisor.up
    finally:
        supervisor.stop()
        broker.stop()


@pytest.mark.timeout(30)
def test_up_stays_false_after_giving_up():
    broker = FakeBroker(failures=99)
    given_up = threading.Event()
    supervisor = BrokerSupervisor(broker, lambda reason: given_up.set(), tries=2, first_delay_s=0.01)
    supervisor.start()
    broker.process.kill()
    assert given_up.wait(10)
    assert not supervisor.up and supervisor.restarts == 0
