"""Settings: one frozen object built once from defaults, a TOML file, KOP_FAST_* variables and flags.

Precedence, lowest first: built-in defaults, `--config FILE` (TOML, same keys as
the long options with `_` or `-`), environment variables `KOP_FAST_<OPTION>`,
command-line flags. Every value is validated here, once; anything invalid
raises ConfigError with a one-line message.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """An option has an invalid value or is unknown."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One Kafka listener, as Kafka's `listeners` names it: NAME://HOST:PORT. The name is
    the security protocol itself (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or a name of
    its own mapped to one by --listener-security-protocol-map."""
    protocol: str
    host: str
    port: int
    name: str = ""  # "": the protocol's name

    @property
    def listener_name(self) -> str:
        return self.name or self.protocol

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def __str__(self) -> str:
        return f"{self.listener_name}://{self.host}:{self.port}"


_LISTENER = re.compile(r"^(?:(?P<proto>[A-Za-z0-9_]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]/]*):(?P<port>\d+)$")
SUPPORTED_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def parse_listener(text: str) -> Listener:
    """[NAME://]HOST:PORT. A NAME that is no security protocol keeps protocol "" until
    `resolve_listener_protocols` looks it up in the protocol map."""
    m = _LISTENER.match(text.strip())
    if not m:
        raise ConfigError(f"listener {text!r} is not [PROTOCOL://]HOST:PORT")
    name = (m.group("proto") or "PLAINTEXT").upper()
    port = int(m.group("port"))
    if port > 65535:
        raise ConfigError(f"listener {text!r}: port {port} out of range")
    host = m.group("host").strip("[]") or "0.0.0.0"
    if name in SUPPORTED_PROTOCOLS:
        return Listener(name, host, port)
    return Listener("", host, port, name)


def _protocol_map(value: Any) -> tuple[tuple[str, str], ...]:
    """Kafka's listener.security.protocol.map: NAME:PROTOCOL,NAME:PROTOCOL."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name, sep, proto = item.partition(":")
        name, proto = name.strip().upper(), proto.strip().upper()
        if not sep or not re.fullmatch(r"[A-Z0-9_]+", name) or proto not in SUPPORTED_PROTOCOLS:
            raise ConfigError(f"listener-security-protocol-map entry {item!r} is not NAME:PROTOCOL "
                              f"(protocols: {', '.join(SUPPORTED_PROTOCOLS)})")
        out.append((name, proto))
    return tuple(out)


def resolve_listener_protocols(listeners, protocol_map) -> tuple[Listener, ...]:
    mapping = dict(protocol_map)
    out = []
    for listener in listeners:
        if listener.protocol:
            out.append(listener)
            continue
        proto = mapping.get(listener.name)
        if proto is None:
            raise ConfigError(f"listener {listener}: {listener.name} is not a security protocol "
                              f"({', '.join(SUPPORTED_PROTOCOLS)}) and --listener-security-protocol-map "
                              "does not name it")
        out.append(replace(listener, protocol=proto))
    return tuple(out)


def parse_host_port(text: str) -> tuple[str, int]:
    listener = parse_listener(text)
    return listener.host, listener.port


def _int_at_least(name: str, minimum: int, requirement: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        if n < minimum or isinstance(value, bool):
            raise ConfigError(f"{name} must be {requirement}, got {value!r}")
        return n
    return parse


def _positive_int(name: str) -> Callable[[Any], int]:
    return _int_at_least(name, 1, "a positive integer")


def _non_negative_int(name: str) -> Callable[[Any], int]:
    return _int_at_least(name, 0, ">= 0")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _boolean(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if isinstance(value, bool):  # TOML
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return parse


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).lower()
        if text not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return text
    return parse


def _name(name: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if not text or "/" in text or any(c.isspace() for c in text):
            raise ConfigError(f"{name} must be a non-empty name without '/' or spaces, got {value!r}")
        return text
    return parse


def _namespace(value: Any) -> str:
    text = str(value)
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"system-namespace must be TENANT/NAMESPACE, got {value!r}")
    return text


def _pulsar_url(value: Any) -> str:
    text = str(value)
    if not re.match(r"^pulsar(\+ssl)?://[^/]+", text):
        raise ConfigError(f"pulsar-url must look like pulsar://HOST:PORT, got {value!r}")
    return text


def _http_url(value: Any) -> str:
    text = str(value)
    if not re.match(r"^https?://[^/]+", text):
        raise ConfigError(f"pulsar-admin-url must look like http://HOST:PORT, got {value!r}")
    return text.rstrip("/")


def _persistent_topic(name: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if not re.match(r"^persistent://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$", text):
            raise ConfigError(f"{name} must be persistent://TENANT/NAMESPACE/TOPIC, got {value!r}")
        return text
    return parse


def _listeners(value: Any) -> tuple[Listener, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    items = [str(i).strip() for i in items if str(i).strip()]
    if not items:
        raise ConfigError("listen needs at least one HOST:PORT")
    return tuple(parse_listener(i) for i in items)


def _advertised(value: Any) -> tuple[Listener, ...]:
    """Kafka's advertised.listeners: [NAME://]HOST:PORT, comma-separated or repeated; one
    without a name stands for the first --listen (the single address of old)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        has_name = "://" in item
        listener = parse_listener(item)
        if listener.host in ("0.0.0.0", "::"):
            raise ConfigError(f"advertised-listener must name a reachable host, got {value!r}")
        out.append(listener if has_name else Listener("", listener.host, listener.port))
    return tuple(out)


def _key_source(name: str) -> Callable[[Any], str]:
    """A token key as Pulsar's tokenSecretKey/tokenPublicKey name it: `file:/path`,
    `data:;base64,...` or `base64:...` (checked for form here, read by auth/tokens.py)."""
    def parse(value: Any) -> str:
        text = str(value).strip()
        if not re.match(r"^(file:|data:|base64:)", text):
            raise ConfigError(f"{name} must be file:/PATH, data:;base64,KEY or base64:KEY")
        return text
    return parse


def _tenants(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def _mechanisms(value: Any) -> tuple[str, ...]:
    names = tuple(m.upper() for m in _tenants(value))
    for m in names:
        if m not in ("PLAIN", "OAUTHBEARER"):
            raise ConfigError(f"sasl-enabled-mechanisms: {m} is not supported (PLAIN, OAUTHBEARER)")
    if not names:
        raise ConfigError("sasl-enabled-mechanisms needs at least one mechanism")
    return names


@dataclass(frozen=True, slots=True)
class Settings:
    listen: tuple[Listener, ...] = (Listener("PLAINTEXT", "127.0.0.1", 9092),)
    # Per listener name (one without a name: the first --listen); absent: the bound address.
    advertised_listener: tuple[Listener, ...] = ()
    listener_security_protocol_map: tuple[tuple[str, str], ...] = ()
    # TLS of SSL and SASL_SSL listeners (PEM files); the CA checks client certificates.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client_auth: str = "none"  # none | requested | required
    # SASL listeners: tokens are verified like Pulsar's AuthenticationProviderToken.
    sasl_enabled_mechanisms: tuple[str, ...] = ("PLAIN", "OAUTHBEARER")
    auth_token_secret_key: str | None = None
    auth_token_public_key: str | None = None
    allowed_tenants: tuple[str, ...] = ()  # empty: any tenant
    pulsar_url: str | None = None
    # The proxy's own Pulsar token (an authenticating Pulsar): the JWT, token:JWT or file:PATH.
    pulsar_auth_token: str | None = field(default=None, repr=False)
    # SASL clients' Produce and Fetch are authorized by Pulsar, as their own role (storage/pulsar/role_access.py).
    pulsar_authorize_roles: bool = False
    pulsar_admin_url: str | None = None
    data_dir: Path = Path("kop-data")
    kafka_tenant: str = "public"
    kafka_namespace: str = "default"
    system_namespace: str = "public/kafka"
    entry_format: str = "kafka"
    # Kafka offsets on Pulsar: "consecutive" (0, 1, 2, ... per partition) or "packed" (Pulsar
    # positions). Chosen once per cluster and kept in Pulsar; None: what Pulsar keeps, and
    # "consecutive" for a new cluster (`PulsarStorage.start`).
    offset_mode: str | None = None
    # Entries this process stored, kept for fetches that follow the producer (kafka format).
    # A Pulsar broker's managed-ledger cache defaults to a fifth of its direct memory
    # (~800 MB with the stock 4 GB), and Kafka serves recent data from the page cache: a
    # consumer a few hundred MB behind is still "right behind". With 128 MB, reading back
    # 2M x 100 B records (220 MB) took 40% of them through Pulsar readers, ~0.4 CPU s per
    # million records more than from memory.
    read_cache_mb: int = 512
    default_num_partitions: int = 1
    # Kafka's auto.create.topics.enable: Produce, and Metadata when the client allows it,
    # create a topic that does not exist.
    auto_create_topics: bool = True
    node_id: int | None = None  # None: the lowest id free in the cluster
    cluster_id: str | None = None
    max_request_size: int = 100 * 1024 * 1024
    # Kafka's max.connections and max.connections.per.ip (both unbounded there). A connection
    # over either is closed at once. Each open connection costs a file descriptor and a few
    # KB of memory (its receive buffer's pages only as they are used).
    max_connections: int = 10_000
    max_connections_per_ip: int = 1_000
    # Kafka's connections.max.idle.ms: a connection that sends nothing for this long and
    # has nothing in flight is closed; 0 never closes one.
    connections_max_idle_ms: int = 600_000
    # Produce request bytes handed to the storage whose receipts are not in yet, summed over
    # all connections; at the bound, connections that send Produce stop being read until
    # it drops (the per-connection bounds in server/connection.py stay).
    max_pending_produce_bytes: int = 256 * 1024 * 1024
    log_level: str = "info"
    log_format: str = "text"
    offsets_topic: str = "persistent://public/kafka/__consumer_offsets"
    # Kafka uses 50; here each partition in use costs a Pulsar client of its own (a
    # connection, 3 threads), a producer, a lock subscription and a replay at first use.
    offsets_topic_num_partitions: int = 8
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    # Where Prometheus metrics, /health and /ready are served; None: not at all.
    metrics_listen: tuple[str, int] | None = None
    config: Path | None = field(default=None, compare=False)


# option name -> parser; option names are the long flags without dashes.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "listen": _listeners,
    "advertised_listener": _advertised,
    "listener_security_protocol_map": _protocol_map,
    "tls_cert": lambda v: Path(str(v)),
    "tls_key": lambda v: Path(str(v)),
    "tls_ca": lambda v: Path(str(v)),
    "tls_client_auth": _choice("tls-client-auth", ("none", "requested", "required")),
    "sasl_enabled_mechanisms": _mechanisms,
    "auth_token_secret_key": _key_source("auth-token-secret-key"),
    "auth_token_public_key": _key_source("auth-token-public-key"),
    "allowed_tenants": _tenants,
    "pulsar_url": _pulsar_url,
    "pulsar_auth_token": lambda v: str(v).strip(),
    "pulsar_authorize_roles": _boolean("pulsar-authorize-roles"),
    "pulsar_admin_url": _http_url,
    "data_dir": lambda v: Path(str(v)),
    "kafka_tenant": _name("kafka-tenant"),
    "kafka_namespace": _name("kafka-namespace"),
    "system_namespace": _namespace,
    "entry_format": _choice("entry-format", ("kafka", "pulsar")),
    "offset_mode": _choice("offset-mode", ("consecutive", "packed")),
    "read_cache_mb": _non_negative_int("read-cache-mb"),
    "default_num_partitions": _positive_int("default-num-partitions"),
    "auto_create_topics": _boolean("auto-create-topics"),
    "node_id": _non_negative_int("node-id"),
    "cluster_id": lambda v: str(v),
    "max_request_size": _positive_int("max-request-size"),
    "max_connections": _positive_int("max-connections"),
    "max_connections_per_ip": _positive_int("max-connections-per-ip"),
    "connections_max_idle_ms": _non_negative_int("connections-max-idle-ms"),
    "max_pending_produce_bytes": _positive_int("max-pending-produce-bytes"),
    "log_level": _choice("log-level", ("debug", "info", "warning", "error", "critical")),
    "log_format": _choice("log-format", ("text", "json")),
    "offsets_topic": _persistent_topic("offsets-topic"),
    "offsets_topic_num_partitions": _positive_int("offsets-topic-num-partitions"),
    "group_initial_rebalance_delay_ms": _non_negative_int("group-initial-rebalance-delay-ms"),
    "group_min_session_timeout_ms": _non_negative_int("group-min-session-timeout-ms"),
    "metrics_listen": lambda v: parse_host_port(str(v)),
}

assert set(PARSERS) == {f.name for f in fields(Settings)} - {"config"}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in PARSERS:
            raise ConfigError(f"config file {str(path)!r}: unknown key {key!r}")
        out[name] = value
    return out


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    out = {}
    for name in PARSERS:
        value = environ.get("KOP_FAST_" + name.upper())
        if value is not None and value != "":
            out[name] = value
    return out


def build_settings(flags: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """Merge defaults < TOML < environment < flags and validate the result."""
    env = from_environment(environ)
    config_path = flags.get("config") or (environ or os.environ).get("KOP_FAST_CONFIG")
    merged: dict[str, Any] = {}
    if config_path:
        merged.update(load_toml(Path(config_path)))
    merged.update(env)
    merged.update({k: v for k, v in flags.items() if v is not None and k != "config"})
    values = {name: PARSERS[name](value) for name, value in merged.items()}
    settings = replace(Settings(), **values)
    settings = _check_listeners(settings)
    if config_path:
        settings = replace(settings, config=Path(config_path))
    return settings


def _check_listeners(settings: Settings) -> Settings:
    listen = resolve_listener_protocols(settings.listen, settings.listener_security_protocol_map)
    # Names may repeat (several PLAINTEXT addresses, as before names): a name's clients are
    # then told the first such listener's address.
    names = [listener.listener_name for listener in listen]
    for adv in settings.advertised_listener:
        if adv.name or adv.protocol:
            if adv.listener_name not in names:
                raise ConfigError(f"advertised-listener {adv}: no --listen is named {adv.listener_name}")
    if any(listener.uses_tls for listener in listen) and not (settings.tls_cert and settings.tls_key):
        raise ConfigError("SSL and SASL_SSL listeners need --tls-cert and --tls-key")
    if settings.tls_client_auth != "none" and settings.tls_ca is None:
        raise ConfigError(f"--tls-client-auth {settings.tls_client_auth} needs --tls-ca to check client certificates")
    if settings.pulsar_authorize_roles and not any(listener.uses_sasl for listener in listen):
        raise ConfigError("--pulsar-authorize-roles needs a SASL listener (the roles are SASL clients')")
    if any(listener.uses_sasl for listener in listen) and not (
            settings.auth_token_secret_key or settings.auth_token_public_key):
        raise ConfigError("SASL listeners need --auth-token-secret-key or --auth-token-public-key")
    return replace(settings, listen=listen)


def advertised_addresses(settings: Settings, bound_ports: list[int] | None = None) -> dict[str, tuple[str, int]]:
    """Listener name -> the host and port clients are told to connect to, first listener first."""
    given = {}
    for i, adv in enumerate(settings.advertised_listener):
        name = adv.listener_name if (adv.name or adv.protocol) else settings.listen[0].listener_name
        given.setdefault(name, (adv.host, adv.port))
    out = {}
    for i, listener in enumerate(settings.listen):
        name = listener.listener_name
        if name in out:
            continue
        if name in given:
            out[name] = given[name]
            continue
        host = listener.host
        if host in ("0.0.0.0", "::", ""):
            import platform
            host = platform.node() or "localhost"
        out[name] = host, bound_ports[i] if bound_ports is not None else listener.port
    return out


def advertised_address(settings: Settings, bound_port: int | None = None) -> tuple[str, int]:
    """Host and port clients of the first listener are told to connect to."""
    ports = None if bound_port is None else [bound_port] + [l.port for l in settings.listen[1:]]
    return next(iter(advertised_addresses(settings, ports).values()))
