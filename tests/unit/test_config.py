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


def test_log_format():
    assert Settings().log_format == "text"
    assert build_settings({}, environ={"KOP_FAST_LOG_FORMAT": "JSON"}).log_format == "json"
    assert build_settings({"log_format": "text"}, environ={"KOP_FAST_LOG_FORMAT": "json"}).log_format == "text"


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
    {"log_format": "xml"},
])
def test_invalid_values(flags):
    with pytest.raises(ConfigError):
        build_settings(flags, environ={})


def test_advertised_address():
    s = build_settings({"listen": ["127.0.0.1:0"]}, environ={})
    assert advertised_address(s, 4242) == ("127.0.0.1", 4242)
    s = build_settings({"advertised_listener": "kafka.example:19092"}, environ={})
    assert advertised_address(s, 4242) == ("kafka.example", 19092)


@pytest.mark.parametrize("flags,message", [
    ({"default_num_partitions": "0"}, "default-num-partitions must be a positive integer, got '0'"),
    ({"max_request_size": True}, "max-request-size must be a positive integer, got True"),
    ({"offsets_topic_num_partitions": "two"}, "offsets-topic-num-partitions must be an integer, got 'two'"),
    ({"node_id": "-1"}, "node-id must be >= 0, got '-1'"),
    ({"group_min_session_timeout_ms": False}, "group-min-session-timeout-ms must be >= 0, got False"),
    ({"read_cache_mb": None}, "read-cache-mb must be an integer, got None"),
])
def test_integer_option_messages(flags, message):
    from kop_fast.config import PARSERS

    (name, value), = flags.items()
    with pytest.raises(ConfigError) as info:
        PARSERS[name](value)
    assert str(info.value) == message


def test_integer_option_bounds():
    s = build_settings({"node_id": "0", "group_initial_rebalance_delay_ms": 0, "default_num_partitions": "1"},
                       environ={})
    assert (s.node_id, s.group_initial_rebalance_delay_ms, s.default_num_partitions) == (0, 0, 1)


def test_cli_options_become_settings(capsys):
    from kop_fast.cli import build_parser, main

    args = build_parser().parse_args(["serve", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2",
                                      "--node-id", "3", "--entry-format", "pulsar", "--read-cache-mb", "0"])
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    assert flags["listen"] == ["127.0.0.1:1", "127.0.0.1:2"] and flags["log_level"] is None
    s = build_settings(flags, environ={})
    assert [l.port for l in s.listen] == [1, 2]
    assert (s.node_id, s.entry_format, s.read_cache_mb) == (3, "pulsar", 0)
    # every Settings field but `config`'s own is an option, and --config names the file
    assert set(flags) == {f for f in Settings.__dataclass_fields__}
    assert main(["serve", "--node-id", "-1"]) == 2
    assert capsys.readouterr().err == "kop-fast: error: node-id must be >= 0, got '-1'\n"
    with pytest.raises(SystemExit) as info:
        main(["serve", "--no-such-option"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "kop-fast: error: unrecognized arguments: --no-such-option\n"


def test_auto_create_topics_from_every_source(tmp_path):
    from kop_fast.cli import build_parser

    assert Settings().auto_create_topics is True
    cfg = tmp_path / "k.toml"
    cfg.write_text("auto_create_topics = false\n")
    assert build_settings({"config": str(cfg)}, environ={}).auto_create_topics is False
    assert build_settings({}, environ={"KOP_FAST_AUTO_CREATE_TOPICS": "false"}).auto_create_topics is False
    assert build_settings({"auto_create_topics": "on"}, environ={"KOP_FAST_AUTO_CREATE_TOPICS": "0"}).auto_create_topics
    for text, expected in (("false", False), ("TRUE", True), ("no", False), ("1", True)):
        args = build_parser().parse_args(["serve", "--auto-create-topics", text])
        flags = {k: v for k, v in vars(args).items() if k != "command"}
        assert build_settings(flags, environ={}).auto_create_topics is expected
    with pytest.raises(ConfigError) as info:
        build_settings({"auto_create_topics": "maybe"}, environ={})
    assert str(info.value) == "auto-create-topics must be true or false, got 'maybe'"
