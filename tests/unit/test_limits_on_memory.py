"""The connection limits on a real KafkaNode over the in-memory storage and real sockets:
connections over --max-connections(-per-ip) closed at once, idle ones closed, and
--max-pending-produce-bytes pausing reading while the storage does not answer."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import struct
import time

import pytest
from kio.schema.fetch.v4.response import FetchResponse
from kio.serial import entity_writer

from kop_fast import codec
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.limits import PER_IP, TOTAL
from kop_fast.storage.memory import MemoryPartitionLog
from tests.unit.memory_node import batch, fetch_request, memory_node, produce_request, raw_request, run
from tests.unit.test_metrics import scrape

API_VERSIONS = struct.pack(">hhih", 18, 0, 1, 4) + b"test"


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def connect(bootstrap: str):
    host, port = bootstrap.split(":")
    return await asyncio.open_connection(host, int(port))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


async def api_versions(reader, writer) -> bytes:
    writer.write(framed(API_VERSIONS))
    return await asyncio.wait_for(read_frame(reader), 5)


async def closed_by_server(reader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionResetError:
        return True


async def until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("option, limit", [("max_connections", TOTAL), ("max_connections_per_ip", PER_IP)])
def test_a_connection_over_the_limit_is_closed_at_once_the_others_work(option, limit, caplog):
    async def scenario():
        async with memory_node(metrics_listen="127.0.0.1:0", **{option: 2}) as (node, bootstrap):
            first, second = await connect(bootstrap), await connect(bootstrap)
            for reader, writer in (first, second):
                assert (await api_versions(reader, writer))[:4] == b"\0\0\0\1"
            with caplog.at_level(logging.WARNING, logger="kop_fast.limits"):
                reader, writer = await connect(bootstrap)
                writer.write(framed(API_VERSIONS))  # never read, never answered
                assert await closed_by_server(reader)
                writer.close()
            assert node.limits.refused[limit] == 1 and len(node.connections) == 2
            [line] = [r for r in caplog.records if r.name == "kop_fast.limits"]
            assert line.levelno == logging.WARNING and "127.0.0.1:" in line.getMessage()
            assert f"--{limit} 2" in line.getMessage()
            assert (await api_versions(*first))[:4] == b"\0\0\0\1"  # unaffected
            metrics = await scrape(node)
            assert metrics[("kop_fast_connections_refused_total", (("limit", limit),))] == 1
            assert metrics[("kop_fast_connections", ())] == 2
            first[1].close()
            await until(lambda: node.limits.open == 1)
            assert (await api_versions(*await connect(bootstrap)))[:4] == b"\0\0\0\1"  # room again

    run(scenario)


def test_an_idle_connection_is_closed_an_active_one_is_not(caplog):
    async def scenario():
        async with memory_node(connections_max_idle_ms=300) as (node, bootstrap):
            idle, active = await connect(bootstrap), await connect(bootstrap)
            await api_versions(*idle)
            started = time.monotonic()
            closed = asyncio.ensure_future(closed_by_server(idle[0]))
            closed_after = None
            while time.monotonic() - started < 1.5:  # the active one asks every 100 ms throughout
                assert (await api_versions(*active))[:4] == b"\0\0\0\1"
                if closed_after is None and closed.done():
                    closed_after = time.monotonic() - started
                await asyncio.sleep(0.1)
            assert closed.result()
            assert 0.3 <= closed_after < 0.3 + 2 * 0.075 + 0.2  # the timeout plus at most two sweeps (and pings)
            assert len(node.connections) == 1
            assert node.limits.idle_closed == 1

    with caplog.at_level(logging.DEBUG, logger="kop_fast"):
        run(scenario)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    closing = [r for r in caplog.records if "closed after" in r.getMessage()]
    assert len(closing) == 2  # the idle one, then the active one when the node stops
    assert closing[0].levelno == logging.INFO and "--connections-max-idle-ms" in closing[0].getMessage()
    assert "idle" not in closing[1].getMessage()


class StalledAppends:
    """Appends that neither store nor answer until released: a storage that has stopped."""

    def __init__(self, monkeypatch) -> None:
        self.waiting: list[tuple[asyncio.Future, MemoryPartitionLog, bytes, int]] = []
        original = MemoryPartitionLog.append_batch

        def append_batch(log, batch_, count):
            gate = asyncio.get_running_loop().create_future()
            self.waiting.append((gate, log, bytes(batch_), count))
            return gate

        self.original = original
        monkeypatch.setattr(MemoryPartitionLog, "append_batch", append_batch)

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for gate, log, data, count in waiting:  # stored in the order they came
            gate.set_result(self.original(log, data, count).result())


def produce_frame(topic: str, value: bytes, correlation_id: int, acks: int) -> bytes:
    request = dataclasses.replace(produce_request(topic, batch(value)), acks=acks)
    body = io.BytesIO()
    entity_writer(type(request))(body, request)
    return framed(struct.pack(">hhih", 0, 3, correlation_id, 4) + b"test" + body.getvalue())


@pytest.mark.parametrize("acks", [-1, 0])
def test_pending_produce_bytes_pause_reading_until_the_storage_answers(acks, monkeypatch):
    limit, requests = 64 * 1024, 30

    async def scenario():
        async with memory_node(max_pending_produce_bytes=limit) as (node, bootstrap):
            await asyncio.wait_for(_produce_one(bootstrap), 5)
            stalled = StalledAppends(monkeypatch)
            frames = [produce_frame("stall", bytes([i]) * 10_000, i, acks) for i in range(requests)]
            size = len(frames[0]) - 4
            reader, writer = await connect(bootstrap)
            writer.write(b"".join(frames))  # all of them at once, pipelined
            handed_per_round = -(-limit // size)  # the request that reaches the bound is the last one read

            for _round in range(2):  # paused, released, paused again
                await until(lambda: node.limits.held)
                await asyncio.sleep(0.2)  # time to read more, if it were reading
                [conn] = node.limits.held
                assert conn._reading_paused
                assert len(stalled.waiting) == handed_per_round
                assert node.limits.pending_produce == handed_per_round * size
                # Only connections that produce are held: others are still answered.
                assert (await api_versions(*await connect(bootstrap)))[:4] == b"\0\0\0\1"
                stalled.release()
                await until(lambda: len(stalled.waiting) == handed_per_round)

            monkeypatch.setattr(MemoryPartitionLog, "append_batch", stalled.original)
            stalled.release()
            if acks:
                for i in range(requests):  # every answer, in order
                    frame = await asyncio.wait_for(read_frame(reader), 5)
                    assert struct.unpack(">i", frame[:4])[0] == i
            await until(lambda: node.limits.pending_produce == 0)
            assert not node.limits.held
            response = await raw_request(bootstrap, 1, 4, fetch_request("stall", 0, 100), FetchResponse)
            [part] = response.responses[0].partitions
            assert part.error_code == ErrorCode.none and part.high_watermark == 1 + requests
            values = [r.value for b in codec.decode_batches(bytes(part.records)) for r in b.records]
            assert values == [b"first"] + [bytes([i]) * 10_000 for i in range(requests)]  # nothing lost
            writer.close()

    run(scenario)


async def _produce_one(bootstrap: str) -> None:
    """Creates the topic (auto-creation) before appends stall."""
    reader, writer = await connect(bootstrap)
    writer.write(produce_frame("stall", b"first", 99, -1))
    await read_frame(reader)
    writer.close()
