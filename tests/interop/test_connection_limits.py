"""Many connections and the connection limits against a real `kop-fast serve` (embedded pulsar-lite).

- 400 concurrent raw connections each get their ApiVersions answer, and the process's
  resident memory returns to within 10% of what it was once they are gone;
- --max-connections-per-ip and --max-connections: the connections over them are closed at
  once (one WARNING line for a burst), the others keep working;
- --connections-max-idle-ms: an idle connection is closed, an active one is not.

--max-pending-produce-bytes needs a storage that stops answering, which pulsar-lite cannot
be made to do from here: tests/unit/test_limits_on_memory.py checks it on the in-memory
storage (reading pauses and resumes, every record is stored, responses in order).
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time

import pytest

from tests.support import KopServer, recv_frame

pytestmark = pytest.mark.interop

CONNECTIONS = 400
API_VERSIONS = struct.pack(">hhih", 18, 0, 7, 4) + b"test"
FRAME = struct.pack(">i", len(API_VERSIONS)) + API_VERSIONS


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def api_versions(sock: socket.socket) -> bytes:
    sock.sendall(FRAME)
    return recv_frame(sock)


def connect(port: int, source_ip: str = "127.0.0.1") -> socket.socket:
    """A connection from `source_ip` (any 127.x.y.z is this host: a client on another IP)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source_ip, 0))


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def warnings_in(server: KopServer) -> list[str]:
    return [line for line in server.log_text().splitlines() if " WARNING " in line or " ERROR " in line]


def test_400_concurrent_connections_answered_and_their_memory_returned(tmp_path):
    with KopServer(tmp_path / "data") as server:
        pid = server.process.pid
        for _ in range(3):  # first-use allocations (handler imports, caches) are not what is measured
            with connect(server.port) as sock:
                api_versions(sock)
        time.sleep(1)
        before = rss_kb(pid)

        async def one(all_open: asyncio.Event, answered: list) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(FRAME)
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                answered.append(frame[:4] == struct.pack(">i", 7) and frame[4:6] == b"\0\0")
                await all_open.wait()  # every connection open at once
            finally:
                writer.close()

        async def many() -> tuple[list, int, float]:
            all_open, answered = asyncio.Event(), []
            started = time.monotonic()
            tasks = [asyncio.ensure_future(one(all_open, answered)) for _ in range(CONNECTIONS)]
            while len(answered) < CONNECTIONS and time.monotonic() - started < 30:
                await asyncio.sleep(0.01)
            took = time.monotonic() - started
            peak = rss_kb(pid)
            all_open.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return answered, peak, took

        answered, peak, took = asyncio.run(many())
        assert answered == [True] * CONNECTIONS

        deadline = time.monotonic() + 20
        after = rss_kb(pid)
        while after > before * 1.10 and time.monotonic() < deadline:
            time.sleep(0.2)
            after = rss_kb(pid)
        print(f"\n{CONNECTIONS} connections answered in {took:.2f} s; VmRSS before {before} kB, "
              f"peak {peak} kB, after {after} kB ({(after - before) / before:+.1%})")
        assert after <= before * 1.10, f"VmRSS {before} kB before, {after} kB after {CONNECTIONS} connections"
        assert api_versions(connect(server.port))[:4] == struct.pack(">i", 7)
        assert warnings_in(server) == []


def test_connections_over_the_per_ip_and_total_limits_are_closed_at_once(tmp_path):
    with KopServer(tmp_path / "data", "--max-connections-per-ip", "3", "--max-connections", "5") as server:
        local = [connect(server.port) for _ in range(3)]
        for sock in local:
            assert api_versions(sock)[:4] == struct.pack(">i", 7)
        over_ip = connect(server.port)  # a 4th from 127.0.0.1
        assert closed_by_server(over_ip)
        other = [connect(server.port, "127.0.0.2") for _ in range(2)]  # 5 in total now
        for sock in other:
            assert api_versions(sock)[:4] == struct.pack(">i", 7)
        over_total = connect(server.port, "127.0.0.3")
        assert closed_by_server(over_total)
        for sock in local + other:  # the admitted ones are unaffected
            assert api_versions(sock)[:4] == struct.pack(">i", 7)
        local.pop().close()
        time.sleep(0.2)
        with connect(server.port, "127.0.0.3") as again:  # room again
            assert api_versions(again)[:4] == struct.pack(">i", 7)
        for sock in local + other + [over_ip, over_total]:
            sock.close()
        # Both refusals within 10 s: one WARNING line, naming the first peer and the limit.
        lines = warnings_in(server)
        assert len(lines) == 1, lines
        assert "closing connection from 127.0.0.1:" in lines[0] and "--max-connections-per-ip 3" in lines[0]


def test_an_idle_connection_is_closed_an_active_one_is_not(tmp_path):
    with KopServer(tmp_path / "data", "--connections-max-idle-ms", "500") as server:
        idle, active = connect(server.port), connect(server.port)
        api_versions(idle)
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < 2.0:  # the active one asks every 100 ms
            assert api_versions(active)[:4] == struct.pack(">i", 7)
            if closed_after is None and closed_by_server(idle, timeout=0):
                closed_after = time.monotonic() - started
            time.sleep(0.1)
        assert closed_after is not None and 0.5 <= closed_after < 1.5
        assert api_versions(active)[:4] == struct.pack(">i", 7)
        idle.close()
        active.close()
        assert warnings_in(server) == []
        assert "--connections-max-idle-ms" in server.log_text()  # on the INFO closing line
