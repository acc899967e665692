"""The log formats, and which of pulsar-client's lines reach the console."""

import json
import logging

from kop_fast.logs import JsonFormatter, peer_text
from kop_fast.storage.pulsar.client_log import ClientLogRelay, classify


def record(msg, *args, level=logging.INFO, **extra):
    logger = logging.getLogger("kop_fast.connection")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, None, extra=extra)


def test_json_lines_carry_the_standard_and_the_extra_fields():
    line = JsonFormatter().format(record("connection from %s opened", "127.0.0.1:5", peer="127.0.0.1:5",
                                         client_id="c", client_software_name=None))
    out = json.loads(line)
    assert out["message"] == "connection from 127.0.0.1:5 opened"
    assert (out["level"], out["logger"]) == ("INFO", "kop_fast.connection")
    assert out["time"].endswith("+00:00") and "T" in out["time"]
    assert (out["peer"], out["client_id"], out["client_software_name"]) == ("127.0.0.1:5", "c", None)
    assert "args" not in out and "msg" not in out and "\n" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed", level=logging.ERROR)
        rec.exc_info = __import__("sys").exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(rec))["exception"]


def test_peer_text():
    assert peer_text(("127.0.0.1", 9092)) == "127.0.0.1:9092"
    assert peer_text(("::1", 9092, 0, 0)) == "[::1]:9092"
    assert peer_text(None) == "None"


NORMAL = [
    "2026-12-01 20:17:33.957 WARN  [140336290592448] ClientConnection:1731 | [127.0.0.1:54724 -> "
    "127.0.0.1:54801] Received error response from server: UnknownError (Topic has no messages) -- req_id: 2",
    "2026-12-01 20:17:33.958 ERROR [140336290592448] ConsumerImpl:1725 | [persistent://public/kafka/"
    "__kop_fast_topics, reader-dc93872a61, 0] Failed to getLastMessageId: UnknownError",
    "2026-12-01 20:17:41.787 WARN  [140336229746368] HandlerBase:67 | Cancel the pending reconnection due to "
    "the start timeout",
]
SURFACED = [
    ("2026-12-01 20:21:54.965 WARN  [140661898593984] ConsumerImpl:381 | [persistent://public/kafka/"
     "__consumer_offsets-partition-2, __kop_fast_coordinator, 0] Temporary error in creating consumer: "
     "ResultDisconnected", logging.WARNING),
    ("2026-12-01 20:17:33.957 WARN  [1] ClientConnection:1731 | [a -> b] Received error response from server: "
     "UnknownError (something else) -- req_id: 2", logging.WARNING),
    ("2026-12-01 20:17:33.957 ERROR [1] ClientConnection:1234 | [a -> b] Connection closed with ConnectError",
     logging.ERROR),
]


def test_normal_pulsar_client_lines_stay_at_debug():
    for line in NORMAL:
        level, message = classify(line)
        assert level == logging.DEBUG
        assert message.split(" | ")[0] in ("ClientConnection:1731", "ConsumerImpl:1725", "HandlerBase:67")


def test_other_warnings_and_errors_are_surfaced_and_info_stays_in_the_file():
    for line, level in SURFACED:
        assert classify(line)[0] == level
    assert classify("2026-12-01 20:19:02.269 INFO  [1] ClientImpl:568 | Subscribing on Topic :t") is None
    assert classify("") is None


def test_relay_passes_on_complete_lines_written_after_it_started(tmp_path, caplog):
    path = tmp_path / "pulsar-client.log"
    path.write_text(SURFACED[0][0] + "\n")  # from before: not relayed again
    relay = ClientLogRelay(path)
    relay._file = open(path, "rb")
    relay._file.seek(0, 2)
    with caplog.at_level(logging.DEBUG, logger="kop_fast.pulsar_client"):
        with open(path, "a") as fh:
            fh.write(NORMAL[0] + "\n" + SURFACED[2][0][:40])
        relay.poll()
        with open(path, "a") as fh:
            fh.write(SURFACED[2][0][40:] + "\n")
        relay.close()
    assert [(r.levelno, r.getMessage().split(" | ")[0]) for r in caplog.records] == [
        (logging.DEBUG, "ClientConnection:1731"), (logging.ERROR, "ClientConnection:1234")]


def test_a_second_process_on_the_same_directory_gets_a_file_of_its_own(tmp_path):
    import os
    import subprocess
    import sys

    program = ("import sys, time\nfrom kop_fast.storage.pulsar import client_log\n"
               "print(client_log.use_file(sys.argv[1]).name, flush=True)\ntime.sleep(float(sys.argv[2]))\n")
    first = subprocess.Popen([sys.executable, "-c", program, str(tmp_path), "5"], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "pulsar-client.log"
        second = subprocess.run([sys.executable, "-c", program, str(tmp_path), "0"], capture_output=True,
                                text=True, timeout=30)
        assert second.stdout.strip().startswith("pulsar-client-") and second.stdout.strip() != "pulsar-client.log"
    finally:
        first.kill()
        first.wait()
    # Once the first is gone, the file is free again.
    third = subprocess.run([sys.executable, "-c", program, str(tmp_path), "0"], capture_output=True, text=True,
                           timeout=30)
    assert third.stdout.strip() == "pulsar-client.log"
    assert os.path.exists(tmp_path / "pulsar-client.log")
