"""kop_fast.storage.pulsar.one_off.hedged: a one-off read that pulsar-lite stalls gets a second reader."""

from __future__ import annotations

import asyncio

import pytest

from kop_fast.storage.pulsar.one_off import hedged

STALL = None


class Attempts:
    """attempt(timeout) stand-ins: call n waits plan[n][0] seconds (STALL: forever), then
    answers "answer n" or raises TimeoutError, as plan[n][1] says."""

    def __init__(self, *plan):
        self.plan = list(plan)
        self.started = 0
        self.cancelled = 0

    async def __call__(self, timeout):
        delay, outcome = self.plan[self.started]
        self.started += 1
        number = self.started
        try:
            await asyncio.sleep(3600 if delay is STALL else delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if outcome == "fail":
            raise TimeoutError(f"attempt {number} timed out")
        return f"answer {number}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_a_quick_answer_starts_no_second_attempt():
    attempts = Attempts((0.0, "ok"), (0.0, "ok"))
    assert run(hedged(attempts, 1.0, 0.05)) == "answer 1"
    assert attempts.started == 1


def test_a_stalled_attempt_is_overtaken_and_cancelled():
    attempts = Attempts((STALL, "ok"), (0.0, "ok"))
    assert run(hedged(attempts, 1.0, 0.01)) == "answer 2"
    assert (attempts.started, attempts.cancelled) == (2, 1)


def test_the_first_attempt_can_still_win_after_the_hedge():
    attempts = Attempts((0.05, "ok"), (STALL, "ok"))
    assert run(hedged(attempts, 1.0, 0.01)) == "answer 1"
    assert (attempts.started, attempts.cancelled) == (2, 1)


def test_a_failure_before_the_hedge_is_raised_at_once():
    attempts = Attempts((0.0, "fail"), (0.0, "ok"))
    with pytest.raises(TimeoutError, match="attempt 1"):
        run(hedged(attempts, 1.0, 0.5))
    assert attempts.started == 1


def test_one_failure_after_the_hedge_waits_for_the_other():
    attempts = Attempts((0.1, "ok"), (0.0, "fail"))
    assert run(hedged(attempts, 1.0, 0.01)) == "answer 1"


def test_both_failing_raise_the_later_error():
    attempts = Attempts((0.02, "fail"), (0.1, "fail"))
    with pytest.raises(TimeoutError, match="attempt 2"):
        run(hedged(attempts, 1.0, 0.01))


def test_cancelling_the_caller_cancels_both_attempts():
    attempts = Attempts((STALL, "ok"), (STALL, "ok"))

    async def main():
        task = asyncio.ensure_future(hedged(attempts, 1.0, 0.01))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    run(main())
    assert (attempts.started, attempts.cancelled) == (2, 2)
