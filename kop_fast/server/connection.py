"""One Kafka client connection: an asyncio BufferedProtocol that frames, dispatches and orders.

Requests may be pipelined; handlers may finish out of order (a Fetch that long-
polls behind a Metadata), but responses leave strictly in request order, as
Kafka requires. Each request takes a slot in `_slots`; a slot is filled when its
handler finishes, and the filled prefix of the queue is written out.

Malformed input (bad frame size, undecodable header or body, unknown API or
version) closes the connection: Kafka brokers do the same, and it is the only
answer a client that sent garbage can rely on. That is logged as a WARNING with
the peer's address.

Each connection logs one INFO line when it is opened and one when it is closed,
with the peer, the client id and the client software (KIP-511 fields of
ApiVersions v3+). The opening line waits for the ApiVersions request that Kafka
clients send first (`identify`, called by its handler), so nothing is added to
the path of other requests; a connection closed without one (a port probe) logs
at DEBUG only.

The node's limits (`server/limits.py`) are checked when a connection opens (over
--max-connections or --max-connections-per-ip: closed at once), by a periodic idle
sweep, and for Produce only on the request path (an integer add and compare: at
--max-pending-produce-bytes the connection stops reading, as with its own bounds).
"""

from __future__ import annotations

import asyncio
import io
import logging
import mmap
import time
from collections import deque

from kop_fast.logs import peer_text
from kop_fast.protocol.encoded import EncodedResponse, unsupported_api_versions_body
from kop_fast.protocol.errors import ErrorCode, MalformedRequest
from kop_fast.protocol.headers import (
    API_VERSIONS_KEY,
    RequestHeader,
    parse_request_header,
    peek_api,
    response_header,
)
from kop_fast.protocol.schemas import encode_entity, is_flexible, response_schema

log = logging.getLogger("kop_fast.connection")

_INITIAL_BUFFER = 256 * 1024
_MIN_FREE = 64 * 1024
# A frame at least this large is received into a buffer of its own, straight from the
# socket: no copy out of the shared receive buffer, and no moving a partial frame to its
# front (Produce requests of ~1 MB paid both, every time). Any smaller frame fits in the
# _MIN_FREE bytes get_buffer keeps free, so the receive buffer never has to grow for one.
_OWN_BUFFER_FRAME = _MIN_FREE
# Beyond this many unanswered requests, or this many bytes of them, we stop reading:
# backpressure instead of an unbounded queue of work. librdkafka pipelines without a
# limit by default; counting requests alone let Produce requests pile up by the GB
# while Pulsar was slower than the client.
MAX_IN_FLIGHT = 512
MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024
_PRODUCE_KEY = 0


def _receive_buffer(size: int) -> mmap.mmap:
    """Anonymous memory of its own for one connection's receive buffer. Pages become resident
    only as bytes land in them, and return to the system when the connection goes: a
    bytearray is zeroed (so resident) in full at once and, freed, stays in glibc's heap,
    which `allocator.py` keeps mapped; 400 connections that sent one ApiVersions each
    left 100 MB behind that way."""
    return mmap.mmap(-1, size)


class RequestContext:
    """What a handler knows about the request it serves."""

    __slots__ = ("node", "connection", "header", "api_version")

    def __init__(self, node, connection: "KafkaConnection", header: RequestHeader) -> None:
        self.node = node
        self.connection = connection
        self.header = header
        self.api_version = header.api_version

    @property
    def response_schema(self):
        return response_schema(self.header.api_key, self.header.api_version)


class _Slot:
    __slots__ = ("parts", "ready", "request_size", "started", "api_key", "pending")

    def __init__(self, request_size: int = 0) -> None:
        self.parts: list | None = None
        self.ready = False
        self.request_size = request_size
        self.started = 0.0  # when it was dispatched, with --metrics-listen only
        self.api_key = -1
        self.pending = 0  # a Produce's bytes counted in the node's pending produce bytes


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, node, listener=None) -> None:
        self.node = node
        # The listener it came through: Metadata advertises that listener's addresses.
        self.listener_name = listener.listener_name if listener is not None else None
        self.transport: asyncio.Transport | None = None
        self.peer = None  # the client's socket address
        self.peer_name = ""  # ... as HOST:PORT
        self._identity: dict | None = None  # client id and software, once ApiVersions told them
        self._opened = time.monotonic()
        self._buf = _receive_buffer(_INITIAL_BUFFER)
        self._start = 0  # first unconsumed byte
        self._end = 0  # end of received bytes
        self._frame: bytearray | None = None  # a large frame being received in place
        self._frame_filled = 0
        self._slots: deque[_Slot] = deque()
        self._inflight_bytes = 0  # sizes of requests whose response is not written yet
        self._tasks: set[asyncio.Future] = set()  # handler tasks and futures in flight
        self._reading_paused = False
        self._writing_paused = False
        self._held = False  # by the node: too many Produce bytes pending (server/limits.py)
        self._closed = False
        self._admitted = False  # counted by the node's connection limits
        self._close_reason: str | None = None  # why we closed it, for the closing line
        self._limits = node.limits
        # For the idle sweep (server/limits.py): reads counts buffer_updated calls.
        self.reads = 0
        self.reads_seen = 0
        self.idle_since = self._opened
        self._idle = asyncio.Event()
        self._idle.set()
        self.max_frame_size = node.settings.max_request_size

    # -- asyncio protocol ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.peer_name = peer_text(self.peer)
        ip = self._ip()
        if not self._limits.admit(ip, self.peer_name):
            self._closed = True
            transport.abort()  # Kafka closes it too: nothing is read, nothing is answered
            return
        self._admitted = True
        self.node.connections.add(self)

    def _ip(self) -> str:
        peer = self.peer
        return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")

    @property
    def identity(self) -> dict | None:
        """Peer, client id and client software, once ApiVersions told them."""
        return self._identity

    def identify(self, client_id: str | None, software_name: str | None, software_version: str | None) -> None:
        """Who the client is (from ApiVersions); the first call logs the connection's opening line."""
        if self._identity is not None:
            return
        self._identity = identity = {"peer": self.peer_name, "client_id": client_id,
                                     "client_software_name": software_name,
                                     "client_software_version": software_version}
        log.info("connection from %s opened: client id %r, %s", self.peer_name, client_id,
                 _software(software_name, software_version), extra=identity)

    def connection_lost(self, exc) -> None:
        if not self._admitted:
            return  # refused in connection_made: logged (rate-limited) there
        self._admitted = False
        self._limits.release(self._ip())
        if self._held:
            self._limits.held.discard(self)
        identity = self._identity
        seconds = round(time.monotonic() - self._opened, 3)
        why = exc or self._close_reason
        if identity is not None:
            log.info("connection from %s closed after %.1f s: client id %r, %s%s", self.peer_name, seconds,
                     identity["client_id"], _software(identity["client_software_name"],
                                                      identity["client_software_version"]),
                     f" ({why})" if why else "", extra={**identity, "seconds": seconds})
        else:
            log.debug("connection from %s closed after %.1f s without an ApiVersions request", self.peer_name,
                      seconds, extra={"peer": self.peer_name, "seconds": seconds})
        self._closed = True
        self.node.connections.discard(self)
        for task in list(self._tasks):
            task.cancel()
        self._slots.clear()
        self._inflight_bytes = 0
        self._idle.set()

    def eof_received(self):
        return False  # close our side too

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def get_buffer(self, sizehint: int):
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled:]
        buf = self._buf
        if len(buf) - self._end < _MIN_FREE:
            used = self._end - self._start
            if self._start and len(buf) - used >= _MIN_FREE:
                buf[:used] = buf[self._start:self._end]
            else:
                # Never resize in place: the previous memoryview may still be exported.
                new = _receive_buffer(max(len(buf) * 2, used + _MIN_FREE))
                new[:used] = buf[self._start:self._end]
                self._buf = buf = new
            self._start, self._end = 0, used
        return memoryview(buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        self.reads += 1
        try:
            if self._frame is not None:
                self._frame_filled += nbytes
                if self._frame_filled < len(self._frame):
                    return
                frame, self._frame = self._frame, None
                self._dispatch(frame)
                return
            self._end += nbytes
            self._process_frames()
        except MalformedRequest as exc:
            self._close_malformed(str(exc))

    # -- framing and dispatch -------------------------------------------------------------------
    def _process_frames(self) -> None:
        buf = self._buf
        max_size = self.max_frame_size
        # Paused means no new work either: complete frames already received wait in the
        # buffer (`_continue_frames` takes them up on resume), so a pause bounds what is
        # dispatched to the request that caused it, not to a receive buffer full of them.
        while not self._closed and not self._reading_paused and self._end - self._start >= 4:
            start = self._start
            size = int.from_bytes(buf[start:start + 4], "big", signed=True)
            if size < 0 or size > max_size:
                raise MalformedRequest(f"request size {size} outside 0..{max_size}")
            if self._end - start - 4 < size:
                if size >= _OWN_BUFFER_FRAME:
                    self._receive_in_place(size)
                break
            # One copy (a bytearray slice would copy once more): the frame outlives the
            # receive buffer, which is reused for the next bytes.
            with memoryview(buf) as view:
                frame = bytes(view[start + 4:start + 4 + size])
            self._start = start + 4 + size
            self._dispatch(frame)
        if self._start == self._end:
            self._start = self._end = 0

    def _receive_in_place(self, size: int) -> None:
        """Continue the incomplete frame at `_start` in a buffer of its own (see get_buffer)."""
        start = self._start + 4
        have = self._end - start
        frame = bytearray(size)
        with memoryview(self._buf) as view:
            frame[:have] = view[start:self._end]
        self._frame, self._frame_filled = frame, have
        # Nothing else is in the receive buffer: reads stop at the end of this frame.
        self._start = self._end = 0

    def _dispatch(self, frame) -> None:
        api_key, api_version, correlation_id = peek_api(frame)
        node = self.node
        entry = node.registry.get(api_key)
        if entry is None:
            raise MalformedRequest(f"unsupported API key {api_key}")
        if not entry.min_version <= api_version <= entry.max_version:
            if api_key == API_VERSIONS_KEY:
                # KIP-511: answer an ApiVersions we cannot parse with a v0 response that
                # carries UNSUPPORTED_VERSION and our range, so the client can retry.
                self._answer_unsupported_api_versions(correlation_id, entry)
                return
            raise MalformedRequest(f"unsupported version {api_version} of API {api_key}")
        flexible = is_flexible(api_key, api_version)
        header, body_offset = parse_request_header(frame, flexible)
        request = entry.decode(api_version, frame, body_offset)
        ctx = RequestContext(node, self, header)
        slot = _Slot(len(frame))
        if node.metrics is not None:
            slot.started = node.metrics.request(entry, api_version)
        self._inflight_bytes += slot.request_size
        self._slots.append(slot)
        self._idle.clear()
        try:
            result = entry.handle(ctx, request)
        except Exception as exc:
            self._fail(ctx, entry, request, slot, exc)
            return
        if isinstance(result, asyncio.Future):
            # A plain future (Produce's hot path): no Task to create and schedule.
            self._tasks.add(result)
            result.add_done_callback(lambda t: self._finished(t, ctx, entry, request, slot))
            if api_key == _PRODUCE_KEY:
                self._produce_handed(slot)
            self._update_reading()
        elif hasattr(result, "__await__"):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._finished(t, ctx, entry, request, slot))
            if api_key == _PRODUCE_KEY:
                self._produce_handed(slot)
            self._update_reading()
        else:
            self._complete(slot, ctx, result)

    def _produce_handed(self, slot: _Slot) -> None:
        """A Produce now waits on the storage: count it node-wide (settled in `_finished`,
        which also runs when the connection is lost: its tasks are cancelled)."""
        slot.pending = slot.request_size
        if self._limits.produce_handed(slot.pending) and not self._held:
            self._held = True
            self._limits.hold(self)

    def release_hold(self) -> None:
        """The node's pending Produce bytes dropped below the bound (server/limits.py)."""
        self._held = False
        self._update_reading()

    def _finished(self, task: asyncio.Task, ctx, entry, request, slot: _Slot) -> None:
        self._tasks.discard(task)
        if slot.pending:
            self._limits.produce_settled(slot.pending)
            slot.pending = 0
        if self._closed or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._fail(ctx, entry, request, slot, exc)
        else:
            self._complete(slot, ctx, task.result())

    def _fail(self, ctx, entry, request, slot: _Slot, exc: BaseException) -> None:
        if isinstance(exc, MalformedRequest):
            self._close_malformed(str(exc))
            return
        log.error("%s v%d from %s failed", entry.name, ctx.api_version, self.peer_name, exc_info=exc)
        if entry.error_response is None:
            self._abort()
            return
        try:
            response = entry.error_response(ctx, request, ErrorCode.unknown_server_error)
        except Exception:
            log.exception("building the error response of %s failed", entry.name)
            self._abort()
            return
        self._complete(slot, ctx, response)

    def _complete(self, slot: _Slot, ctx: RequestContext, response) -> None:
        if response is None:
            slot.parts = None  # acks=0 Produce: Kafka sends nothing back
        else:
            slot.parts = self._encode(ctx.header, response)
        slot.ready = True
        if slot.started:
            slot.api_key = ctx.header.api_key
            slot.started = self.node.metrics.completed(slot.api_key, slot.started, response)
        self._write_ready()

    def _encode(self, header: RequestHeader, response) -> list:
        api_key = header.api_key
        # ApiVersions responses always use header v0 (KIP-511).
        flexible = api_key != API_VERSIONS_KEY and is_flexible(api_key, header.api_version)
        head = response_header(header.correlation_id, flexible)
        if isinstance(response, EncodedResponse):
            return [(len(head) + response.size).to_bytes(4, "big") + head, *response.parts]
        out = io.BytesIO()
        out.write(b"\0\0\0\0")
        out.write(head)
        encode_entity(response, out)
        view = out.getbuffer()
        view[:4] = (len(view) - 4).to_bytes(4, "big")
        del view
        return [out.getvalue()]

    def _write_ready(self) -> None:
        slots = self._slots
        transport = self.transport
        out = []
        while slots and slots[0].ready:
            slot = slots.popleft()
            self._inflight_bytes -= slot.request_size
            if slot.started:  # ready since then, behind earlier responses
                self.node.metrics.written(slot.api_key, slot.started)
            if slot.parts:
                out.extend(slot.parts)
        if out and not self._closed:
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.writelines(out)
        if not slots:
            self._idle.set()
        self._update_reading()

    def _answer_unsupported_api_versions(self, correlation_id: int, entry) -> None:
        body = unsupported_api_versions_body(entry.min_version, entry.max_version)
        slot = _Slot()
        slot.parts = [(4 + len(body)).to_bytes(4, "big") + correlation_id.to_bytes(4, "big", signed=True) + body]
        slot.ready = True
        self._slots.append(slot)
        self._write_ready()

    # -- flow control and closing ----------------------------------------------------------------
    def _update_reading(self) -> None:
        if self._closed or self.transport is None:
            return
        should_pause = (self._writing_paused or self._held or len(self._slots) >= MAX_IN_FLIGHT
                        or self._inflight_bytes >= MAX_IN_FLIGHT_BYTES)
        if should_pause and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not should_pause and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
            if self._end - self._start >= 4:
                # Frames left behind by the pause; not from here, which may be inside
                # _process_frames or a handler's completion.
                asyncio.get_running_loop().call_soon(self._continue_frames)

    def _continue_frames(self) -> None:
        if self._closed or self._reading_paused:
            return
        try:
            self._process_frames()
        except MalformedRequest as exc:
            self._close_malformed(str(exc))

    def _close_malformed(self, reason: str) -> None:
        log.warning("closing connection from %s: %s", self.peer_name, reason, extra={"peer": self.peer_name})
        self._abort()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            if self.transport is not None:
                self.transport.abort()

    @property
    def busy(self) -> bool:
        """Requests in flight: not idle, whatever the time since the last bytes arrived."""
        return bool(self._slots)

    def close_idle(self, idle_s: float) -> None:
        """Close a connection idle for `idle_s` (Kafka's connections.max.idle.ms): routine, so
        DEBUG here and the reason on the INFO closing line."""
        self._close_reason = f"idle for {idle_s:.1f} s, --connections-max-idle-ms"
        log.debug("closing connection from %s: nothing received for %.1f s", self.peer_name, idle_s,
                  extra={"peer": self.peer_name})
        self.close()

    async def drain(self) -> None:
        """Wait until every request received so far has been answered."""
        await self._idle.wait()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _software(name: str | None, version: str | None) -> str:
    return f"software {name} {version}" if name else "software unknown"
