"""Topics as Kafka clients name them (shared by the handlers): resolving names to layouts
(auto-creation), Kafka's name rule, and what the topic admin APIs share."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import uuid
from collections import Counter
from typing import Any, Awaitable, Callable, Hashable, Iterable, Sequence

from kop_fast.protocol.errors import ErrorCode, KafkaError
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.tenancy import ForeignTopic
from kop_fast.storage.api import InvalidPartitions, InvalidTopicName, TopicExists, TopicInfo, UnknownTopic

log = logging.getLogger("kop_fast.topics")

_MAX_NAME_LENGTH = 249
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]+")


def kafka_name_error(name: str | None) -> str | None:
    """Why Kafka refuses `name` as a topic name (in Kafka's words), or None for a legal name."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return 'Topic name cannot be "." or ".."'
    if len(name) > _MAX_NAME_LENGTH:
        return f"Topic name is illegal, it can't be longer than {_MAX_NAME_LENGTH} characters, topic name: {name}"
    if not _LEGAL_NAME.fullmatch(name):
        return (f'Topic name "{name}" is illegal, it contains a character other than '
                "ASCII alphanumerics, '.', '_' and '-'")
    return None


async def resolve_topic(node, name: str, auto_create: bool) -> tuple[ErrorCode, TopicInfo | None]:
    """Find the topic a Kafka client names; create it when the request allows (`auto_create`)
    and so does the process (`--auto-create-topics`)."""
    storage = node.storage
    try:
        info = await storage.describe_topic(name)
        if info is None and auto_create and node.settings.auto_create_topics:
            try:
                info = await storage.create_topic(name, node.settings.default_num_partitions)
            except TopicExists as exc:
                info = exc.info
    except ForeignTopic:  # a full name outside the connection's tenant (server/tenancy.py)
        return ErrorCode.topic_authorization_failed, None
    except InvalidTopicName:
        return ErrorCode.invalid_topic_exception, None
    if info is None:
        return ErrorCode.unknown_topic_or_partition, None
    return ErrorCode.none, info


def granted(node, info: TopicInfo, action: str) -> bool | None:
    """May the connection `action` ("produce"/"consume") the topic, known without I/O: True
    for connections that are not a SASL tenant's or an engine that does not authorize
    them; None when `authorized` must ask the engine (server/tenancy.py)."""
    check = getattr(node.storage, "granted", None)
    return True if check is None else check(info, action)


async def authorized(node, info: TopicInfo, action: str) -> ErrorCode:
    """NONE, or TOPIC_AUTHORIZATION_FAILED when the engine refuses (a Pulsar that could not
    answer: the storage error's code)."""
    known = granted(node, info, action)
    if known is None:
        try:
            known = await node.storage.authorize(info, action)
        except Exception as exc:
            log.warning("asking Pulsar whether a client may %s %s failed: %r", action, info.name, exc)
            return storage_error_code(exc)
    return ErrorCode.none if known else ErrorCode.topic_authorization_failed


async def existing_topic(node, name: str) -> TopicInfo | None:
    """The layout of a topic that exists (never created here): no I/O when it is known."""
    info = node.storage.cached_topic(name)
    if info is None:
        _, info = await resolve_topic(node, name, auto_create=False)
    return info


def missing_topic_error(node, name: str) -> ErrorCode:
    """Why a partition request found no topic (off the hot path: only when it found none):
    another tenant's topic is refused, not unknown."""
    is_foreign = getattr(node.storage, "is_foreign", None)  # a tenant's view (server/tenancy.py)
    if is_foreign is not None and is_foreign(name):
        return ErrorCode.topic_authorization_failed
    return ErrorCode.unknown_topic_or_partition


async def current_topic(node, name: str) -> TopicInfo | None:
    """The topic's layout as the storage has it now (the admin APIs change topics: no cache),
    None when there is no such topic (a name the storage refuses names none)."""
    try:
        return await node.storage.describe_topic(name)
    except ForeignTopic:
        raise  # another tenant's: refused (TOPIC_AUTHORIZATION_FAILED), not "unknown"
    except InvalidTopicName:
        return None


async def topics_by_id(node, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, TopicInfo]:
    """The topics, of those with these ids, that exist."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {info.topic_id: info for info in await node.storage.list_topics() if info.topic_id in wanted}


# -- manual partition assignments ---------------------------------------------------------------
def assignment_error(node_id: int, replicas: Sequence[int]) -> str | None:
    """Why Kafka refuses this replica list of a manual partition assignment (in Kafka's
    words), or None. Placement (the cluster's rendezvous hashing), not the assignment, picks
    each partition's leader: the one list accepted is [node_id], as a single broker would."""
    if not replicas:
        return "The manual partition assignment includes an empty replica list."
    for broker in replicas:
        if broker != node_id:
            return f"The manual partition assignment includes broker {broker}, but no such broker is registered."
    if len(replicas) > 1:
        return f"The manual partition assignment includes the broker {node_id} more than once."
    return None


# -- admin operations: one outcome each, within the request's timeout ---------------------------
# Every operation until it is done, also after its request timed out (the event loop only
# holds tasks weakly).
_RUNNING: set[asyncio.Task] = set()


def _done(task: asyncio.Task) -> None:
    _RUNNING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: answered to the client, or logged by _done_late


def _done_late(task: asyncio.Task) -> None:
    if task.cancelled() or task.exception() is None:
        log.info("a topic operation finished after its request timed out")
    else:
        log.warning("a topic operation failed after its request timed out: %r", task.exception())


def _failure(exc: BaseException) -> tuple[ErrorCode, str | None]:
    if isinstance(exc, KafkaError):  # without a message of its own: none (like Kafka's null)
        return exc.code, None if str(exc) == exc.code.name else str(exc)
    if isinstance(exc, TopicExists):
        return ErrorCode.topic_already_exists, f"Topic '{exc.info.name}' already exists."
    if isinstance(exc, UnknownTopic):
        return ErrorCode.unknown_topic_or_partition, str(exc)
    if isinstance(exc, ForeignTopic):
        return ErrorCode.topic_authorization_failed, str(exc)
    if isinstance(exc, InvalidPartitions):
        return ErrorCode.invalid_partitions, str(exc)
    if isinstance(exc, InvalidTopicName):
        return ErrorCode.invalid_topic_exception, str(exc)
    log.warning("topic operation failed: %r", exc)
    return storage_error_code(exc), str(exc) or type(exc).__name__


def _outcome(task: asyncio.Task, timeout_ms: int) -> tuple[ErrorCode, str | None, Any]:
    if not task.done():
        task.add_done_callback(_done_late)
        return ErrorCode.request_timed_out, (f"Not done within the request's timeout of {timeout_ms} ms; "
                                             "it goes on and may still succeed."), None
    exc = task.exception()
    if exc is not None:
        return (*_failure(exc), None)
    return ErrorCode.none, None, task.result()


async def within_timeout(timeout: datetime.timedelta,
                         operations: Sequence[Awaitable]) -> list[tuple[ErrorCode, str | None, Any]]:
    """Run the operations side by side for at most `timeout` (the request's `timeout_ms`);
    (error, message, result) for each, in order. One that raises KafkaError answers its code
    and message; storage errors become Kafka codes. One not done in time answers
    REQUEST_TIMED_OUT and goes on (like Kafka, which may still complete what timed out)."""
    tasks = [asyncio.ensure_future(op) for op in operations]
    for task in tasks:
        _RUNNING.add(task)
        task.add_done_callback(_done)
    if tasks:
        await asyncio.wait(tasks, timeout=max(timeout.total_seconds(), 0))
    timeout_ms = int(timeout.total_seconds() * 1000)
    return [_outcome(task, timeout_ms) for task in tasks]


async def answer_each(timeout: datetime.timedelta, requested: Sequence[tuple[Hashable, Any]],
                      operation: Callable[[Any], Awaitable],
                      refusal: Callable[[Any], tuple[ErrorCode, str] | None] = lambda item: None,
                      duplicate: Callable[[Any], str] = lambda key: "Duplicate topic name.",
                      ) -> dict[Hashable, tuple[ErrorCode, str | None, Any]]:
    """One answer (error, message, result) per distinct key of the request's (key, item)
    entries, in request order: `refusal(item)` when it refuses, INVALID_REQUEST when the key
    comes more than once (Kafka answers a duplicate once and acts on none of its entries),
    else the outcome of `operation(item)`, all of them run `within_timeout`."""
    counts = Counter(key for key, _ in requested)
    answers: dict[Hashable, tuple] = {}
    to_run = []
    for key, item in requested:
        if key in answers:
            continue
        refused = refusal(item)
        if refused is None and counts[key] > 1:
            refused = ErrorCode.invalid_request, duplicate(key)
        answers[key] = (*refused, None) if refused is not None else ()
        if refused is None:
            to_run.append((key, item))
    outcomes = await within_timeout(timeout, [operation(item) for _, item in to_run])
    answers.update(zip((key for key, _ in to_run), outcomes))
    return answers
