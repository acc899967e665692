"""How kop_fast lays Kafka data into Pulsar messages, and a helper for Pulsar applications.

Entry format `kafka` (the default, the fast path): one Pulsar message per Kafka
record batch. Its payload is the batch exactly as the Kafka producer sent it (v2
record batch, CRC intact, maybe compressed); its properties mark it:

    kafka.format  = "v2"        the payload is a Kafka v2 record batch
    kafka.records = "<count>"   records in the batch
    kafka.offset  = "<offset>"  (--offset-mode consecutive) the batch's base offset

With consecutive offsets (the default) the stored batch carries its base offset
too, and record i is at kafka.offset + i (docs/ARCHITECTURE.md, "Offsets", for
Pulsar producers' messages in between). With `--offset-mode packed` the stored base
offset is meaningless; the real offset of record i is `pack_offset(ledger, entry,
0) + i` (see docs/CODEC.md). A Pulsar consumer turns
such a message back into records with `records(message)`:

    import pulsar
    from kop_fast.pulsar_payload import records
    reader = client.create_reader("persistent://public/default/t-partition-0", pulsar.MessageId.earliest)
    for record in records(reader.read_next()):
        print(record.offset, record.key, record.value, record.headers)

Entry format `pulsar` (interop): one Pulsar message per Kafka record; key ->
partition key (UTF-8; other bytes base64 with property `kafka.key.b64`), value ->
payload (a null value is a Pulsar null-value message), timestamp -> event time,
headers -> properties with `headers_to_properties()` / `properties_to_headers()`
below (the mapping is described in docs/CODEC.md).

This module does not import pulsar: it describes the properties, the Pulsar
client is the caller's.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from typing import Iterable, Mapping

FORMAT_PROPERTY = "kafka.format"
FORMAT_V2 = "v2"
RECORDS_PROPERTY = "kafka.records"
KEY_B64_PROPERTY = "kafka.key.b64"
# `--offset-mode consecutive`: the Kafka offset of the message (a Kafka-format entry: of
# its first record), set by the partition's owner when it stores it.
OFFSET_PROPERTY = "kafka.offset"
# Properties kop_fast itself sets; they never become Kafka headers.
RESERVED_PROPERTIES = frozenset({FORMAT_PROPERTY, RECORDS_PROPERTY, KEY_B64_PROPERTY, OFFSET_PROPERTY})


def is_kafka_entry(properties: dict) -> bool:
    return properties.get(FORMAT_PROPERTY) == FORMAT_V2


def records(message) -> list:
    """Records of a Pulsar message (pulsar.Message) that kop_fast wrote in the `kafka` entry format."""
    from kop_fast import codec

    properties = message.properties()
    if not is_kafka_entry(properties):
        raise ValueError("not a kop_fast kafka-format message (no kafka.format=v2 property)")
    stamp = properties.get(OFFSET_PROPERTY)
    if stamp is not None:  # --offset-mode consecutive: the owner's stamp (a lower bound, see offsets_consecutive.py)
        base = int(stamp)
    else:
        mid = message.message_id()
        base = codec.pack_offset(mid.ledger_id(), mid.entry_id(), 0)
    data = bytearray(message.data())
    codec.patch_base_offset(data, base)
    out = []
    for batch in codec.decode_batches(bytes(data)):
        out.extend(batch.records)
    return out


# ---------------------------------------------------------------------------
# Kafka headers <-> Pulsar properties (docs/CODEC.md, "Kafka headers <-> Pulsar
# properties").  Plain Python on purpose: it is the Pulsar mapping, not the
# Kafka record format, so it lives here once instead of in both codecs.

HEADER_PROPERTY_PREFIX = "__kafka.hdr."
HEADER_ORDER_PROPERTY = "__kafka.hdr.order"

# json.dumps(keys, ensure_ascii=False, separators=(",", ":")) without building
# an encoder per call
_encode_order = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_position = operator.itemgetter(0)


def _is_text(key: str) -> bool:
    """True if ``key`` encodes as UTF-8 (it holds no lone surrogates)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def headers_to_properties(headers: Iterable) -> dict:
    """Kafka record headers as Pulsar message properties, losslessly.

    A header whose key is unique, valid text and not reserved, and whose value
    is valid UTF-8, becomes the property ``key -> value`` unchanged.  Every
    other header (null or binary value, repeated key, key with undecodable
    bytes or the reserved ``__kafka.hdr.`` prefix) becomes
    ``__kafka.hdr.<position>.<kv>.<key>`` with ``kv`` two letters: key form
    ``t`` (text) or ``b`` (base64 of the key bytes), value form ``t`` (text),
    ``b`` (base64) or ``n`` (null, property value "").  When two or more plain
    headers are not in sorted key order, ``__kafka.hdr.order`` holds the JSON
    list of their keys in header order.  See docs/CODEC.md.
    """
    props: dict = {}
    if not headers:
        return props
    plain_keys: list = []
    escaped: list = []
    for index, header in enumerate(headers):
        try:
            key, value = header
        except (TypeError, ValueError):
            raise TypeError("each header must be a (str, bytes | None) pair") from None
        if not isinstance(key, str):
            raise TypeError(f"header key must be str, not {type(key).__name__}")
        text = None
        if value is not None:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"header value must be bytes or None, not {type(value).__name__}")
            try:
                text = str(value, "utf-8")
            except UnicodeDecodeError:
                text = None
        if (
            text is not None
            and key not in props
            and not key.startswith(HEADER_PROPERTY_PREFIX)
            and (key.isascii() or _is_text(key))
        ):
            props[key] = text
            plain_keys.append(key)
        else:
            escaped.append((index, key, value, text))
    for index, key, value, text in escaped:
        if _is_text(key):
            key_form, key_text = "t", key
        else:
            try:
                raw_key = key.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise ValueError(f"header key {key!r} cannot be encoded as UTF-8") from None
            key_form, key_text = "b", base64.b64encode(raw_key).decode("ascii")
        if value is None:
            value_form, prop_value = "n", ""
        elif text is not None:
            value_form, prop_value = "t", text
        else:
            value_form, prop_value = "b", base64.b64encode(value).decode("ascii")
        props[f"{HEADER_PROPERTY_PREFIX}{index}.{key_form}{value_form}.{key_text}"] = prop_value
    for i in range(1, len(plain_keys)):
        if plain_keys[i - 1] > plain_keys[i]:
            props[HEADER_ORDER_PROPERTY] = _encode_order(plain_keys)
            break
    return props


# what follows the prefix in an escaped header's property name:
# <position>.<key form><value form>.<key text>
_ESCAPED_NAME = re.compile(r"([0-9]+)\.([tb])([tbn])\.(.*)", re.DOTALL)


def _parse_escaped(name: str, value: str) -> tuple | None:
    """(position, key, value) of an escaped header property, None if ``name``
    is not one (then it is treated as an ordinary property)."""
    match = _ESCAPED_NAME.fullmatch(name, len(HEADER_PROPERTY_PREFIX))
    if match is None:
        return None
    digits, key_form, value_form, key_text = match.groups()
    index = int(digits)
    try:
        if key_form == "t":
            key = key_text
        else:  # "b"
            key = str(base64.b64decode(key_text, validate=True), "utf-8", "surrogateescape")
        if value_form == "t":
            header_value = value.encode("utf-8")
        elif value_form == "b":
            header_value = base64.b64decode(value, validate=True)
        else:  # "n"
            header_value = None
    except (binascii.Error, ValueError):
        return None
    return index, key, header_value


def properties_to_headers(props: Mapping) -> tuple:
    """Pulsar message properties as Kafka headers; inverse of
    headers_to_properties().  Ordinary properties (any Pulsar producer's)
    become headers with the same key and the UTF-8 bytes of the value;
    without an order marker they come out sorted by key, since Pulsar does
    not keep property order."""
    if not props:
        return ()
    plain: dict = {}
    escaped: list = []
    order_marker = None
    for name, value in props.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("Pulsar properties map str to str")
        if name.startswith(HEADER_PROPERTY_PREFIX):
            if name == HEADER_ORDER_PROPERTY:
                order_marker = value
                continue
            parsed = _parse_escaped(name, value)
            if parsed is not None:
                escaped.append(parsed)
                continue
        plain[name] = value
    ordered_keys = None
    if order_marker is not None:
        try:
            listed = json.loads(order_marker)
        except ValueError:
            listed = None
        if isinstance(listed, list) and all(isinstance(k, str) for k in listed):
            # listed keys in their order, then any property added since
            listed_keys = dict.fromkeys([k for k in listed if k in plain])
            ordered_keys = list(listed_keys)
            ordered_keys.extend(sorted([k for k in plain if k not in listed_keys]))
        else:  # not ours: keep it as an ordinary property
            plain[HEADER_ORDER_PROPERTY] = order_marker
    if ordered_keys is None:
        ordered_keys = sorted(plain)
    plain_headers = [(k, plain[k].encode("utf-8")) for k in ordered_keys]
    if not escaped:
        return tuple(plain_headers)
    total = len(plain_headers) + len(escaped)
    escaped.sort(key=_position)
    slots: list = [None] * total
    overflow = []
    for index, key, value in escaped:
        if index < total and slots[index] is None:
            slots[index] = (key, value)
        else:  # positions not written by headers_to_properties: keep them, in order
            overflow.append((key, value))
    plain_iter = iter(plain_headers)
    out = []
    for slot in slots:
        if slot is None:
            slot = next(plain_iter, None)
            if slot is None:
                continue
        out.append(slot)
    out.extend(plain_iter)
    out.extend(overflow)
    return tuple(out)
