"""Hands pulsar-client completions (which run on its I/O threads) to the event loop in batches.

pulsar.asyncio pays one cross-thread wake-up per operation; under load that
dominates. Here a completion is appended to a deque and the loop is woken only
if no drain is already scheduled, so a burst of N send receipts costs one
wake-up and N cheap appends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Callable

import _pulsar
import pulsar

from kop_fast.storage.api import StorageError, StorageErrorKind
from kop_fast.storage.pulsar import client_log


_R = _pulsar.Result
# A retry after a metadata refresh can succeed: the Pulsar side was unavailable.
_UNAVAILABLE = frozenset({
    _R.NotConnected, _R.AlreadyClosed, _R.ConnectError, _R.ReadError, _R.ProducerBusy,
    _R.ProducerQueueIsFull, _R.MemoryBufferIsFull, _R.ServiceUnitNotReady, _R.TopicTerminated,
    _R.ProducerFenced, _R.LookupError, _R.BrokerMetadataError, _R.TooManyLookupRequestException,
    _R.ConsumerBusy, _R.ProducerNotInitialized, _R.ConsumerNotInitialized})


def error_kind(result) -> StorageErrorKind:
    """What a pulsar-client Result means for a Kafka client."""
    if result == _R.Timeout:
        return StorageErrorKind.TIMED_OUT
    if result in _UNAVAILABLE:
        return StorageErrorKind.UNAVAILABLE
    if result == _R.MessageTooBig:
        return StorageErrorKind.TOO_LARGE
    return StorageErrorKind.FAILED


class PulsarError(StorageError):
    """A pulsar-client operation failed; `result` is the pulsar Result (or None)."""

    def __init__(self, result, message: str = "") -> None:
        super().__init__(message or str(result), error_kind(result))
        self.result = result


class CompletionBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: deque = deque()
        self._scheduled = False

    def post(self, fn: Callable, *args: Any) -> None:
        """Run fn(*args) on the loop soon. Safe from any thread."""
        self._pending.append((fn, args))
        if not self._scheduled:
            # Two threads may both schedule a drain; an extra drain is harmless.
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed during shutdown: nobody waits any more
                pass

    def _drain(self) -> None:
        # Reset first: anything appended after this point schedules a new drain.
        self._scheduled = False
        pending = self._pending
        while pending:
            fn, args = pending.popleft()
            fn(*args)

    # -- futures for callback-style pulsar-client calls -----------------------------------------
    def result_future(self) -> tuple[asyncio.Future, Callable]:
        """A future and a callback(result, value) as _pulsar's *_async methods call it."""
        fut = self._loop.create_future()

        def callback(result, value=None):
            self.post(_settle_result, fut, result, value)

        return fut, callback

    def value_future(self) -> tuple[asyncio.Future, Callable]:
        """A future and a callback(value_or_error) as _pulsar's *_async_v2 methods call it."""
        fut = self._loop.create_future()

        def callback(value):
            self.post(_settle_value, fut, value)

        return fut, callback


def _settle_result(fut: asyncio.Future, result, value) -> None:
    if fut.done():
        return
    if result == _pulsar.Result.Ok:
        fut.set_result(value)
    else:
        fut.set_exception(PulsarError(result))


def _settle_value(fut: asyncio.Future, value) -> None:
    if fut.done():
        # Nobody waits for this producer, consumer or reader any more (the call was cancelled or
        # timed out): close it, instead of leaving it to the garbage collector.
        if not isinstance(value, _pulsar.Error) and hasattr(value, "close_async"):
            value.close_async(_ignore)
        return
    if isinstance(value, _pulsar.Error):
        fut.set_exception(PulsarError(value.error, value.message))
    else:
        fut.set_result(value)


async def has_message_available(bridge: CompletionBridge, reader) -> bool:
    """Reader.has_message_available, where pulsar-lite's "Topic has no messages" error means False."""
    fut, cb = bridge.result_future()
    reader.has_message_available_async(cb)
    try:
        return bool(await fut)
    except PulsarError as exc:
        # pulsar-lite answers getLastMessageId on an empty topic with UnknownError.
        if exc.result == _pulsar.Result.UnknownError:
            return False
        raise


def id_position(mid) -> tuple[int, int, int]:
    """(ledger, entry, batch index) of a MessageId: Pulsar's order, as a comparable tuple."""
    return mid.ledger_id(), mid.entry_id(), mid.batch_index()


def position_of(msg) -> tuple[int, int, int]:
    return id_position(msg.message_id())


def release_waiters(waiters: list, position: tuple) -> list:
    """Resolve the (wanted position, future) pairs a log reader has now passed; the rest."""
    remaining = []
    for wanted, waiter in waiters:
        if wanted <= position:
            if not waiter.done():
                waiter.set_result(None)
        else:
            remaining.append((wanted, waiter))
    return remaining


class DuplicateFilter:
    """Drops messages at or before the last one delivered.

    pulsar-lite can deliver a message several times, and out of order, to the same
    reader; what is left after dropping anything not beyond the last position is
    complete and in order (measured).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (-1, -1, -2)

    def fresh(self, msg) -> bool:
        return self.fresh_position(position_of(msg))

    def fresh_position(self, position: tuple[int, int, int]) -> bool:
        if position <= self.last:
            return False
        self.last = position
        return True


async def close_quietly(bridge: CompletionBridge, handle, timeout: float = 5.0) -> None:
    """Close a pulsar-client client, producer, consumer or reader; wait at most `timeout`.

    Closing happens on the way out (shutdown, replacing a broken handle): a failure
    or a slow broker must not hold that up, so errors are ignored.
    """
    fut, cb = bridge.result_future()
    handle.close_async(cb)
    try:
        await asyncio.wait_for(fut, timeout)
    except (PulsarError, asyncio.TimeoutError):
        pass


KEEP_SUBSCRIPTION = "__kop_fast_keep"


async def keep_every_message(client, bridge: CompletionBridge, topic: str) -> None:
    """Make sure a log that is replayed from its first message keeps all of them.

    Readers are not subscriptions: a Pulsar broker may delete messages that no
    subscription still needs (namespace retention 0, the default). A durable
    subscription that never acknowledges anything, created at the earliest
    message, keeps them; it is made once (later calls find it) and holds no consumer.
    """
    conf = _pulsar.ConsumerConfiguration()
    conf.consumer_type(_pulsar.ConsumerType.Shared)
    conf.subscription_initial_position(_pulsar.InitialPosition.Earliest)
    conf.receiver_queue_size(1)
    fut, cb = bridge.value_future()
    client.subscribe_async_v2(topic, KEEP_SUBSCRIPTION, conf, cb)
    consumer = await fut
    await close_quietly(bridge, consumer)


def _ignore(*_args) -> None:
    pass


def client_logger():
    """The logger to give pulsar.Client: pulsar-client's own C++ logger, writing to the file
    `client_log` relays from (the console when there is none).

    Never a Python logger: pulsar-client calls it from its I/O thread while holding
    a producer's mutex, and that call needs the GIL; the event-loop thread holds the
    GIL inside send_async/flush_async waiting for the same mutex -> deadlock (seen
    under load with the pulsar entry format; apache/pulsar-client-python#116).
    """
    level = pulsar.LoggerLevel.Debug if logging.getLogger("kop_fast").isEnabledFor(logging.DEBUG) \
        else pulsar.LoggerLevel.Warn
    path = client_log.current_file()
    return pulsar.ConsoleLogger(level) if path is None else pulsar.FileLogger(level, str(path))
