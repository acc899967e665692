"""Listeners as Kafka names them: NAME://HOST:PORT, the protocol map, advertised per listener,
and what the security options require."""

from __future__ import annotations

import pytest

from kop_fast.cluster.view import ClusterView
from kop_fast.config import ConfigError, Listener, advertised_addresses, build_settings

KEY = {"auth_token_secret_key": "base64:AAAA"}
TLS = {"tls_cert": "/c.pem", "tls_key": "/k.pem"}


def settings(**flags):
    return build_settings(flags, environ={})


def test_protocol_names_and_mapped_names():
    s = settings(listen=["127.0.0.1:9092", "SASL_SSL://0.0.0.0:9094", "INTERNAL://127.0.0.1:9095"],
                 listener_security_protocol_map="INTERNAL:SASL_PLAINTEXT", **KEY, **TLS)
    assert s.listen == (Listener("PLAINTEXT", "127.0.0.1", 9092), Listener("SASL_SSL", "0.0.0.0", 9094),
                        Listener("SASL_PLAINTEXT", "127.0.0.1", 9095, "INTERNAL"))
    assert [l.listener_name for l in s.listen] == ["PLAINTEXT", "SASL_SSL", "INTERNAL"]
    assert s.listen[1].uses_tls and s.listen[1].uses_sasl and not s.listen[2].uses_tls


@pytest.mark.parametrize("flags, message", [
    ({"listen": "EXTERNAL://127.0.0.1:1"}, "does not name it"),
    ({"listen": "SSL://127.0.0.1:1"}, "--tls-cert"),
    ({"listen": "SASL_PLAINTEXT://127.0.0.1:1"}, "--auth-token"),
    ({"listener_security_protocol_map": "X:KERBEROS"}, "NAME:PROTOCOL"),
    ({"advertised_listener": "OTHER://h:1"}, "no --listen is named OTHER"),
    ({"tls_client_auth": "maybe"}, "tls-client-auth"),
    ({"tls_client_auth": "required"}, "needs --tls-ca"),
    ({"sasl_enabled_mechanisms": "GSSAPI"}, "not supported"),
    ({"auth_token_secret_key": "/plain/path"}, "file:/PATH"),
])
def test_refused(flags, message):
    with pytest.raises(ConfigError, match=message):
        settings(**flags)


def test_advertised_per_listener():
    s = settings(listen=["127.0.0.1:9092", "SASL_PLAINTEXT://127.0.0.1:9093"], **KEY,
                 advertised_listener=["kafka.example:19092", "SASL_PLAINTEXT://sasl.example:19093"])
    assert advertised_addresses(s) == {"PLAINTEXT": ("kafka.example", 19092),
                                       "SASL_PLAINTEXT": ("sasl.example", 19093)}
    s = settings(listen=["127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"], **KEY)
    assert advertised_addresses(s, [1111, 2222]) == {"PLAINTEXT": ("127.0.0.1", 1111),
                                                      "SASL_PLAINTEXT": ("127.0.0.1", 2222)}


def test_join_records_carry_every_listener_and_older_ones_still_apply():
    view = ClusterView()
    view.apply({"op": "join", "node": 0, "instance": "a", "host": "h", "port": 1,
                "listeners": {"PLAINTEXT": ["h", 1], "SASL_SSL": ["h", 2]}})
    view.apply({"op": "join", "node": 1, "instance": "b", "host": "old", "port": 9})  # no listeners
    assert view.members[0].address("SASL_SSL") == ("h", 2)
    assert view.members[0].address(None) == ("h", 1)
    assert view.members[1].address("SASL_SSL") == ("old", 9)
