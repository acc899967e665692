"""kop_fast.pulsar_payload: the Kafka header <-> Pulsar property mapping
(headers_to_properties / properties_to_headers, docs/CODEC.md).  It is plain
Python, written once, so these tests run once (they used to run against each
codec implementation)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kop_fast import codec, pulsar_payload
from kop_fast.pulsar_payload import headers_to_properties, properties_to_headers
from tests.unit.test_codec_fuzz import FUZZ, headers_strategy

MAPPING_NAMES = (
    "HEADER_PROPERTY_PREFIX",
    "HEADER_ORDER_PROPERTY",
    "headers_to_properties",
    "properties_to_headers",
)


# ---------------------------------------------------------------------------
# where the mapping lives


@pytest.mark.parametrize("name", MAPPING_NAMES)
def test_the_mapping_lives_in_pulsar_payload_not_in_the_codec(name):
    assert hasattr(pulsar_payload, name)
    assert name not in codec.API
    for module in (codec, *codec.implementations()):
        assert not hasattr(module, name), f"{module.__name__} still defines {name}"
    assert pulsar_payload.HEADER_PROPERTY_PREFIX == "__kafka.hdr."
    assert pulsar_payload.HEADER_ORDER_PROPERTY == "__kafka.hdr.order"


def test_pulsar_payload_does_not_import_pulsar():
    code = (
        "import sys; import kop_fast.pulsar_payload as p; "
        "p.properties_to_headers(p.headers_to_properties([('k', b'v'), ('n', None)])); "
        "print('pulsar' in sys.modules, '_pulsar' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


# ---------------------------------------------------------------------------
# headers <-> properties


def test_plain_headers_map_directly():
    headers = (("content-type", b"application/json"), ("trace", "ünïcode".encode()))
    props = headers_to_properties(headers)
    assert props == {"content-type": "application/json", "trace": "ünïcode"}
    assert properties_to_headers(props) == headers
    assert headers_to_properties(()) == {}
    assert properties_to_headers({}) == ()


def test_pulsar_properties_become_headers():
    props = {"b": "2", "a": "1", "empty": "", "ü": "ß"}
    headers = properties_to_headers(props)
    assert headers == (("a", b"1"), ("b", b"2"), ("empty", b""), ("ü", "ß".encode()))
    # something that merely looks reserved stays an ordinary property
    odd = {"__kafka.hdr.x": "1", "__kafka.hdr.1.zz.k": "2", "__kafka.hdr.order": "nope"}
    assert set(properties_to_headers(odd)) == {(k, v.encode()) for k, v in odd.items()}


def test_escaped_headers():
    headers = (
        ("z", b"last-but-first"),
        ("bin", b"\xff\x00\xfe"),
        ("null", None),
        ("z", b"duplicate"),
        ("__kafka.hdr.order", b"reserved"),
        ("\udcff\udcfe", b"undecodable key"),
        ("a", b"plain"),
        ("dot.ted.key", b""),
    )
    props = headers_to_properties(headers)
    assert props["z"] == "last-but-first"
    assert props["a"] == "plain"
    assert props["dot.ted.key"] == ""
    assert props["__kafka.hdr.1.tb.bin"] == "/wD+"
    assert props["__kafka.hdr.2.tn.null"] == ""
    assert props["__kafka.hdr.3.tt.z"] == "duplicate"
    assert props["__kafka.hdr.4.tt.__kafka.hdr.order"] == "reserved"
    assert props["__kafka.hdr.5.bt.//4="] == "undecodable key"
    assert props["__kafka.hdr.order"] == '["z","a","dot.ted.key"]'
    assert properties_to_headers(props) == headers
    # Pulsar's C++ client hands properties back sorted by key
    assert properties_to_headers(dict(sorted(props.items()))) == headers
    assert properties_to_headers(dict(reversed(props.items()))) == headers


def test_headers_to_properties_output_and_order_are_pinned():
    # was: identical across the compiled and pure-Python codecs; now there is
    # one implementation, so pin what both of them returned, key order included
    headers = (("b", b"1"), ("a", b"\x80"), ("b", None), ("c", b"x"))
    result = headers_to_properties(headers)
    assert result == {"b": "1", "c": "x", "__kafka.hdr.1.tb.a": "gA==", "__kafka.hdr.2.tn.b": ""}
    assert list(result) == ["b", "c", "__kafka.hdr.1.tb.a", "__kafka.hdr.2.tn.b"]


def test_headers_to_properties_rejects_bad_input():
    with pytest.raises(TypeError):
        headers_to_properties([(b"key", b"v")])
    with pytest.raises(TypeError):
        headers_to_properties([("key", "text")])
    with pytest.raises(TypeError):
        headers_to_properties([("key",)])
    with pytest.raises(ValueError):
        headers_to_properties([("\ud800", None)])
    with pytest.raises(TypeError):
        properties_to_headers({"k": 1})


def test_order_marker_survives_added_properties():
    props = headers_to_properties((("b", b"1"), ("a", b"2")))
    assert props["__kafka.hdr.order"] == '["b","a"]'
    props["added-later"] = "x"
    assert properties_to_headers(props) == (("b", b"1"), ("a", b"2"), ("added-later", b"x"))


# ---------------------------------------------------------------------------
# random input (Hypothesis; the header strategy is the codec fuzz tests')


@FUZZ
@given(headers=headers_strategy)
def test_headers_properties_round_trip(headers):
    props = headers_to_properties(headers)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    for k, v in props.items():  # Pulsar properties must be valid UTF-8
        k.encode("utf-8")
        v.encode("utf-8")
    assert properties_to_headers(props) == headers
    # order of the property map does not matter (Pulsar does not keep it)
    assert properties_to_headers(dict(sorted(props.items()))) == headers
    assert properties_to_headers(dict(reversed(list(props.items())))) == headers


@FUZZ
@given(props=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=6))
def test_any_pulsar_properties_convert(props):
    headers = properties_to_headers(props)
    if not any(k.startswith("__kafka.hdr.") for k in props):
        assert sorted(headers) == sorted((k, v.encode()) for k, v in props.items())
