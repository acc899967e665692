"""Kafka topic configs: which exist, their defaults, and which kop_fast can honour.

One catalogue (`CATALOGUE`) serves CreateTopics, DescribeConfigs, AlterConfigs and
IncrementalAlterConfigs, and Produce and the retention sweep read the values it
accepted. Every entry carries Kafka's documented default, its type and meaning, the
broker configs that give a topic its default in Kafka (the synonyms), and what
kop_fast does with it:

- honoured: `max.message.bytes` (Produce refuses larger batches), `retention.ms`
  (the retention sweep moves the log start; the Pulsar storage also applies it);
- accepted only as Kafka's default, because that is what kop_fast does: `cleanup.policy`
  (delete), `compression.type` (producer), `message.timestamp.type` (CreateTime),
  `retention.bytes` (-1, or any value when the storage applies size retention itself);
- read-only: the rest (segments, flushing, compaction, replicas) — Pulsar decides those.

A value kop_fast would not act on is refused with INVALID_CONFIG and the reason; no
setting is ever accepted and then ignored.

Also here: the broker configs a broker resource describes (`broker_entries`: kop_fast's
settings where it has them, Kafka's documented defaults otherwise, all read-only) and
the resource checks the three config handlers share.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from kop_fast.coordinator.group_base import GroupConfig
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.topics import resolve_topic


class ConfigSource(enum.IntEnum):
    """DescribeConfigs' config source (KIP-226)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ConfigType(enum.IntEnum):
    """DescribeConfigs' config type (v3+, KIP-569)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ResourceType(enum.IntEnum):
    """Config resource types (ConfigResource.Type) that kop_fast answers for."""

    TOPIC = 2
    BROKER = 4


class AlterOp(enum.IntEnum):
    """IncrementalAlterConfigs' operations."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


MAX_MESSAGE_BYTES = "max.message.bytes"
RETENTION_MS = "retention.ms"
RETENTION_BYTES = "retention.bytes"

_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1

# Why kop_fast leaves a setting to Pulsar (the refusal message and the documentation note).
_LEDGERS = "Pulsar manages ledgers itself"
_FSYNC = "Pulsar's bookies decide when written data is synced"
_COMPACTION = "Pulsar topic compaction is not used by kop_fast"
_REPLICAS = "kop_fast keeps no replicas: Pulsar stores the copies"
_WRITE_QUORUM = "Pulsar's write quorum is the namespace's persistence policy"

# A check of a value already valid for Kafka: None (accepted) or why kop_fast refuses it.
Check = Callable[[str, Any], str | None]


@dataclass(frozen=True, slots=True)
class TopicConfig:
    name: str
    type: ConfigType
    #: Kafka's documented default, as DescribeConfigs shows it.
    default: str
    #: Kafka's meaning, in one line.
    doc: str
    #: The broker configs that give the topic its default in Kafka, first wins: (name, Kafka's default).
    server: tuple[tuple[str, str | None], ...]
    #: None: kop_fast takes no value (read-only here, `note` says why).
    accept: Check | None = None
    #: INT/LONG: the least valid value; STRING/LIST: Kafka's valid values (empty: any).
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    #: What kop_fast does with it (appended to the documentation).
    note: str = ""

    @property
    def read_only(self) -> bool:
        return self.accept is None

    @property
    def documentation(self) -> str:
        return f"{self.doc} kop_fast: {self.note}" if self.note else self.doc

    def invalid(self, value: str) -> str | None:
        """Why `value` is not a valid value of this config for Kafka, or None."""
        text = value.strip()
        kind = self.type
        if kind in (ConfigType.INT, ConfigType.LONG):
            try:
                number = int(text)
            except ValueError:
                return f"Invalid value {value} for configuration {self.name}: Not a number of type {kind.name}"
            high = _INT_MAX if kind == ConfigType.INT else _LONG_MAX
            if number > high or number < -high - 1:
                return f"Invalid value {value} for configuration {self.name}: Not a number of type {kind.name}"
            if self.minimum is not None and number < self.minimum:
                return f"Invalid value {value} for configuration {self.name}: Value must be at least {self.minimum}"
        elif kind == ConfigType.DOUBLE:
            try:
                float(text)
            except ValueError:
                return f"Invalid value {value} for configuration {self.name}: Not a number of type DOUBLE"
        elif kind == ConfigType.BOOLEAN:
            if text.lower() not in ("true", "false"):
                return f"Invalid value {value} for configuration {self.name}: Expected value to be either true or false"
        elif self.choices:
            items = list_items(text) if kind == ConfigType.LIST else [text]
            for item in items:
                if item not in self.choices:
                    return (f"Invalid value {item} for configuration {self.name}: "
                            f"String must be one of: {', '.join(self.choices)}")
        return None

    def refusal(self, value: str, storage) -> str | None:
        """None when kop_fast can apply `value` (valid for Kafka), else why not."""
        if self.accept is None:
            return f"{self.name} cannot be changed: {self.note}"
        return self.invalid(value) or self.accept(value.strip(), storage)


def list_items(text: str) -> list[str]:
    """A LIST config's items (comma-separated, blanks dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _any(value: str, storage) -> None:
    return None


def _only(expected: str, why: str) -> Check:
    def check(value: str, storage) -> str | None:
        return None if value == expected else why.format(value=value)
    return check


def _cleanup_policy(value: str, storage) -> str | None:
    items = list_items(value)
    if items == ["delete"]:
        return None
    if "compact" in items:
        return f"cleanup.policy={value} is not supported: {_COMPACTION}"
    return f"cleanup.policy={value} is not supported: kop_fast always deletes by retention (cleanup.policy=delete)"


def _retention_bytes(value: str, storage) -> str | None:
    # The storage applies a size limit itself (Pulsar: retention through the admin API) or nobody does.
    if int(value) == -1 or (storage is not None and storage.applies_retention_bytes):
        return None
    return ("retention.bytes needs --pulsar-admin-url: without it no size limit can be applied "
            "(only -1, unlimited, is accepted)")


def _topic(name, kind, default, doc, server, accept=None, minimum=None, choices=(), note="") -> TopicConfig:
    return TopicConfig(name, kind, default, doc, tuple(server), accept, minimum, choices, note)


_L, _I, _S = ConfigType.LONG, ConfigType.INT, ConfigType.STRING
_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

CATALOGUE: dict[str, TopicConfig] = {c.name: c for c in (
    _topic("cleanup.policy", ConfigType.LIST, "delete",
           "How old data is removed: 'delete' drops it by time or size, 'compact' keeps the latest record per key.",
           [("log.cleanup.policy", "delete")], _cleanup_policy, choices=("compact", "delete"),
           note="only delete (old records go by retention.ms)."),
    _topic("compression.type", _S, "producer",
           "The compression a topic stores batches with; 'producer' keeps what the producer used.",
           [("compression.type", "producer")],
           _only("producer", "compression.type={value} is not supported: kop_fast stores each producer's "
                             "batch as sent (compression.type=producer)"),
           choices=_COMPRESSION, note="only producer (batches are stored as sent)."),
    _topic("delete.retention.ms", _L, "86400000",
           "How long delete tombstones stay in a compacted topic.",
           [("log.cleaner.delete.retention.ms", "86400000")], minimum=0, note=_COMPACTION + "."),
    _topic("file.delete.delay.ms", _L, "60000", "How long a deleted log file waits before it is removed.",
           [("log.segment.delete.delay.ms", "60000")], minimum=0, note=_LEDGERS + "."),
    _topic("flush.messages", _L, str(_LONG_MAX), "The number of messages after which the log is fsynced.",
           [("log.flush.interval.messages", str(_LONG_MAX))], minimum=1, note=_FSYNC + "."),
    _topic("flush.ms", _L, str(_LONG_MAX), "The time after which the log is fsynced.",
           [("log.flush.interval.ms", None), ("log.flush.scheduler.interval.ms", str(_LONG_MAX))],
           minimum=0, note=_FSYNC + "."),
    _topic("index.interval.bytes", _I, "4096", "How many bytes of log go between two offset index entries.",
           [("log.index.interval.bytes", "4096")], minimum=0, note=_LEDGERS + "."),
    _topic("max.compaction.lag.ms", _L, str(_LONG_MAX),
           "The longest a record stays ineligible for compaction.",
           [("log.cleaner.max.compaction.lag.ms", str(_LONG_MAX))], minimum=1, note=_COMPACTION + "."),
    _topic(MAX_MESSAGE_BYTES, _I, "1048588",
           "The largest record batch the topic accepts, in bytes.",
           [("message.max.bytes", "1048588")], _any, minimum=0,
           note="a Produce batch larger than a value set on the topic is refused with MESSAGE_TOO_LARGE; "
                "without one, only --max-request-size and the storage's own limit apply."),
    _topic("message.timestamp.type", _S, "CreateTime",
           "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime).",
           [("log.message.timestamp.type", "CreateTime")],
           _only("CreateTime", "message.timestamp.type={value} is not supported yet: it would need the stored "
                               "batches' timestamps rewritten"),
           choices=("CreateTime", "LogAppendTime"), note="only CreateTime (timestamps are the producer's)."),
    _topic("min.cleanable.dirty.ratio", ConfigType.DOUBLE, "0.5",
           "How much of a log must be uncompacted before the compactor cleans it.",
           [("log.cleaner.min.cleanable.ratio", "0.5")], note=_COMPACTION + "."),
    _topic("min.compaction.lag.ms", _L, "0", "The shortest a record stays uncompacted.",
           [("log.cleaner.min.compaction.lag.ms", "0")], minimum=0, note=_COMPACTION + "."),
    _topic("min.insync.replicas", _I, "1",
           "How many replicas must acknowledge a write with acks=all for it to succeed.",
           [("min.insync.replicas", "1")], minimum=1, note=_WRITE_QUORUM + "."),
    _topic("preallocate", ConfigType.BOOLEAN, "false", "Whether segment files are preallocated on disk.",
           [("log.preallocate", "false")], note=_LEDGERS + "."),
    _topic(RETENTION_BYTES, _L, "-1",
           "The size a partition may grow to before its oldest data is deleted; -1 means no limit.",
           [("log.retention.bytes", "-1")], _retention_bytes,
           note="-1 always; another size only when the storage applies it (--pulsar-admin-url)."),
    _topic(RETENTION_MS, _L, "604800000",
           "How long records are kept before they are deleted; -1 means no time limit.",
           [("log.retention.ms", None), ("log.retention.minutes", None), ("log.retention.hours", "168")],
           _any, minimum=-1,
           note="a value set on the topic moves the log start past older records (checked every minute); "
                "without one, the Pulsar namespace's retention decides."),
    _topic("segment.bytes", _I, "1073741824", "The size of one log segment file.",
           [("log.segment.bytes", "1073741824")], minimum=1048576, note=_LEDGERS + "."),
    _topic("segment.index.bytes", _I, "10485760", "The size of a segment's offset index.",
           [("log.index.size.max.bytes", "10485760")], minimum=4, note=_LEDGERS + "."),
    _topic("segment.jitter.ms", _L, "0", "The most random time taken off a segment's roll time.",
           [("log.roll.jitter.ms", None), ("log.roll.jitter.hours", "0")], minimum=0, note=_LEDGERS + "."),
    _topic("segment.ms", _L, "604800000", "The time after which a new log segment is started.",
           [("log.roll.ms", None), ("log.roll.hours", "168")], minimum=1, note=_LEDGERS + "."),
    _topic("unclean.leader.election.enable", ConfigType.BOOLEAN, "false",
           "Whether a replica outside the in-sync set may become leader, at the cost of data loss.",
           [("unclean.leader.election.enable", "false")], note=_REPLICAS + "."),
)}


def refusal(name: str, value: str | None, storage=None) -> str | None:
    """Why kop_fast cannot apply `name=value` to a topic, or None."""
    config = CATALOGUE.get(name)
    if config is None:
        return f"Unknown topic config name: {name}"
    if value is None:
        return f"Null value not supported for topic configs: {name}"
    return config.refusal(value, storage)


def check_topic_configs(configs: Mapping[str, str | None], storage=None) -> str | None:
    """None when every setting can be applied; else why not (answered as INVALID_CONFIG).

    `storage` answers whether it applies size retention itself (`applies_retention_bytes`);
    without it, retention.bytes is accepted only as -1."""
    for name, value in configs.items():
        why = refusal(name, value, storage)
        if why is not None:
            return why
    return None


@lru_cache(maxsize=1024)
def int_setting(text: str) -> int:
    """A stored INT/LONG setting as a number (validated when set; anything else: no limit)."""
    try:
        return int(text)
    except ValueError:
        return sys.maxsize


# -- what DescribeConfigs answers ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DescribedConfig:
    name: str
    value: str | None
    read_only: bool
    source: ConfigSource
    type: ConfigType
    documentation: str
    #: (name, value, source), the one in effect first.
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...]
    sensitive: bool = False


def _described_topic_config(config: TopicConfig, override: str | None) -> DescribedConfig:
    server = tuple((name, default, ConfigSource.DEFAULT_CONFIG) for name, default in config.server
                   if default is not None)
    if override is None:
        return DescribedConfig(config.name, config.default, config.read_only, ConfigSource.DEFAULT_CONFIG,
                               config.type, config.documentation, server)
    return DescribedConfig(config.name, override, config.read_only, ConfigSource.DYNAMIC_TOPIC_CONFIG,
                           config.type, config.documentation,
                           ((config.name, override, ConfigSource.DYNAMIC_TOPIC_CONFIG),) + server)


def topic_entries(storage, info) -> list[DescribedConfig]:
    """Every topic config of `info`: its overrides (DYNAMIC_TOPIC_CONFIG), Kafka's defaults otherwise."""
    overrides = storage.topic_configs(info)
    entries = [_described_topic_config(c, overrides.get(c.name)) for c in CATALOGUE.values()]
    # Overrides outside the catalogue (stored by something else) are shown as they are.
    entries += [DescribedConfig(name, value, True, ConfigSource.DYNAMIC_TOPIC_CONFIG, ConfigType.UNKNOWN, "",
                                ((name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG),))
                for name, value in sorted(overrides.items()) if name not in CATALOGUE]
    return entries


def describe_topic_configs(node, info) -> list[tuple[str, str | None, bool, int, bool]]:
    """(name, value, read_only, source, sensitive) of every topic config (CreateTopics v5+)."""
    return [(e.name, e.value, e.read_only, int(e.source), e.sensitive) for e in topic_entries(node.storage, info)]


def _broker(name: str, kind: ConfigType, value: str | None, doc: str, kafka_default: str | None,
            from_settings: bool) -> DescribedConfig:
    # Every broker config is read-only: kop_fast's settings are fixed when it starts.
    if not from_settings:
        return DescribedConfig(name, value, True, ConfigSource.DEFAULT_CONFIG, kind, doc,
                               ((name, value, ConfigSource.DEFAULT_CONFIG),) if value is not None else ())
    synonyms = ((name, value, ConfigSource.STATIC_BROKER_CONFIG),)
    if kafka_default is not None:
        synonyms += ((name, kafka_default, ConfigSource.DEFAULT_CONFIG),)
    return DescribedConfig(name, value, True, ConfigSource.STATIC_BROKER_CONFIG, kind, doc, synonyms)


def broker_entries(node) -> list[DescribedConfig]:
    """This node's broker configs: kop_fast's settings where it has them, Kafka's defaults for the
    broker-side defaults of the topic configs above."""
    s = node.settings
    listeners = ",".join(str(listener) for listener in s.listen)
    from_settings = [
        ("node.id", _I, str(node.node_id), "This server's id (--node-id).", None),
        ("broker.id", _I, str(node.node_id), "This broker's id (--node-id).", "-1"),
        ("listeners", _S, listeners, "The addresses this server listens on (--listen).", "PLAINTEXT://:9092"),
        ("advertised.listeners", _S, f"PLAINTEXT://{node.host}:{node.port}",
         "The address clients are told to connect to (--advertised-listener).", None),
        ("num.partitions", _I, str(s.default_num_partitions),
         "The partition count of topics created automatically (--default-num-partitions).", "1"),
        ("socket.request.max.bytes", _I, str(s.max_request_size),
         "The largest request accepted, in bytes (--max-request-size).", "104857600"),
        ("offsets.topic.num.partitions", _I, str(s.offsets_topic_num_partitions),
         "The partition count of the group coordinator's offsets log (--offsets-topic-num-partitions).", "50"),
        ("group.initial.rebalance.delay.ms", _I, str(s.group_initial_rebalance_delay_ms),
         "How long a new group waits for more members before its first rebalance "
         "(--group-initial-rebalance-delay-ms).", "3000"),
        ("group.min.session.timeout.ms", _I, str(s.group_min_session_timeout_ms),
         "The shortest session timeout a group member may ask for (--group-min-session-timeout-ms).", "6000"),
    ]
    entries = [_broker(name, kind, value, doc, default, True) for name, kind, value, doc, default in from_settings]
    entries += [
        _broker("auto.create.topics.enable", ConfigType.BOOLEAN, "true",
                "Whether Metadata and Produce create unknown topics (kop_fast always does, when the request allows).",
                None, False),
        _broker("group.max.session.timeout.ms", _I, str(GroupConfig.max_session_timeout_ms),
                "The longest session timeout a group member may ask for.", None, False),
    ]
    for config in CATALOGUE.values():
        for name, default in config.server:
            unit = name.rsplit(".", 1)[1]
            kind, doc = (_I, f"The broker default of {config.name}, in {unit}.") if unit in ("hours", "minutes") \
                else (config.type, f"The broker default of {config.name}.")
            entries.append(_broker(name, kind, default, f"{doc} {config.documentation}", None, False))
    return entries


# -- shared by the admin handlers ------------------------------------------------------------------
class ResourceError(Exception):
    """One resource of an admin request is answered with this error (the others are not affected)."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def broker_id_error(node, name: str, allow_default: bool) -> ResourceError | None:
    """None when a broker resource names this node (or "" when allowed); else Kafka's INVALID_REQUEST."""
    if name == "" and allow_default:
        return None
    try:
        broker = int(name)
    except ValueError:
        return ResourceError(ErrorCode.invalid_request, f"Node id must be an integer, but it is: {name}")
    if broker != node.node_id:
        expected = f"{node.node_id} or empty string" if allow_default else str(node.node_id)
        return ResourceError(ErrorCode.invalid_request,
                             f"Unexpected broker id, expected {expected}, but received {name}")
    return None


async def existing_topic_or_error(node, name: str):
    """The layout of the topic an admin request names; ResourceError when it does not exist."""
    error, info = await resolve_topic(node, name, auto_create=False)
    if info is None:
        raise ResourceError(error, f"Topic '{name}' does not exist" if error == ErrorCode.unknown_topic_or_partition
                            else f"Topic '{name}' is not this tenant's" if error == ErrorCode.topic_authorization_failed
                            else f"Topic name '{name}' is not valid")
    return info
