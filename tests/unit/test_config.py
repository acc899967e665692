from pathlib import Path

import pytest

from kop_fast.config import ConfigError, Listener, Settings, advertised_address, build_settings


def test_defaults():
    s = build_settings({}, environ={})
    assert s == Settings()
    assert s.listen == (Listener("PLAINTEXT", "127.0.0.1", 9092),)
    assert s.entry_format == "kafka" and s.default_num_partitions == 1
    assert s.kafka_tenant == "public" and s.kafka_namespace == "default"
    assert s.data_dir == Path("kop-data")


def test_precedence_flags_over_env_over_toml(tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('entry-format = "pulsar"\ndefault_num_partitions = 3\nkafka_tenant = "t1"\n')
    env = {"KOP_FAST_DEFAULT_NUM_PARTITIONS": "5", "KOP_FAST_KAFKA_TENANT": "t2"}
    s = build_settings({"config": str(cfg), "kafka_tenant": "t3"}, environ=env)
    assert s.entry_format == "pulsar"  # from TOML
    assert s.default_num_partitions == 5  # env beats TOML
    assert s.kafka_tenant == "t3"  # flag beats env


def test_read_cache_size_from_env_and_zero_disables():
    assert Settings().read_cache_mb == 512
    assert build_settings({}, environ={"KOP_FAST_READ_CACHE_MB": "0"}).read_cache_mb == 0
    assert build_settings({"read_cache_mb": "512"}, environ={}).read_cache_mb == 512


def test_listeners_repeatable_and_protocol():
    s = build_settings({"listen": ["PLAINTEXT://0.0.0.0:9092", "127.0.0.1:9093", "[::1]:9094"]}, environ={})
    assert [str(l) for l in s.listen] == ["PLAINTEXT://0.0.0.0:9092", "PLAINTEXT://127.0.0.1:9093",
                                          "PLAINTEXT://::1:9094"]
    s = build_settings({}, environ={"KOP_FAST_LISTEN": "127.0.0.1:1,127.0.0.1:2"})
    assert [l.port for l in s.listen] == [1, 2]


@pytest.mark.parametrize("flags", [
    {"listen": ["127.0.0.1:99999"]},
    {"advertised_listener": "0.0.0.0:9092"},
    {"system_namespace": "justone"},
    {"kafka_namespace": "a/b"},
    {"max_request_size": "-1"},
    {"read_cache_mb": "-1"},
    {"node_id": "x"},
])
def test_invalid_values(flags):
    with pytest.raises(ConfigError):
        build_settings(flags, environ={})


def test_advertised_address():
    s = build_settings({"listen": ["127.0.0.1:0"]}, environ={})
    assert advertised_address(s, 4242) == ("127.0.0.1", 4242)
    s = build_settings({"advertised_listener": "kafka.example:19092"}, environ={})
    assert advertised_address(s, 4242) == ("kafka.example", 19092)
