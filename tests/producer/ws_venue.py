"""Local WebSocket servers (real sockets, own thread) that speak a venue's wire format by sending
recorded frames verbatim, plus helpers to run a feed against them.

- :class:`RecordedVenue`: connection ``i`` plays ``sessions[i]``, a script of frames, pauses and
  misbehaviour (drop, silence, protocol garbage); it can answer text pings and ping the client.
- :class:`BroadcastVenue`: like a real venue, one stream on one timeline sent to every open
  connection from the moment it subscribed; it can close connections at an age limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Self

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from services.common.backoff import Backoff
from services.producer.feed import Feed

Step = str | float  # a frame to send verbatim, or seconds to pause
#: a server->client frame with a reserved opcode: not WebSocket, the client must fail the link
PROTOCOL_GARBAGE = b"\x83\x05hello"


@dataclass
class Session:
    steps: list[Step]
    #: close the connection after the steps (a drop); otherwise keep it open and quiet
    close: bool = False
    #: after the steps, write bytes that are not a WebSocket frame onto the TCP stream
    garbage: bool = False


class _ServerThread:
    """An asyncio WebSocket server on 127.0.0.1, in a thread of its own."""

    def __enter__(self) -> Self:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0,
                         process_request=self._process_request) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            await self._started()
            self._ready.set()
            await self._stop.wait()

    async def _started(self) -> None:
        pass

    #: websockets' process_request hook: a Response refuses the upgrade, None accepts it
    _process_request: Callable[..., object] | None = None

    async def _handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError


@dataclass
class RecordedVenue(_ServerThread):
    """Connection ``i`` reads ``subscribe_count`` frames, then plays ``sessions[i]``."""

    sessions: list[Session]
    subscribe_count: int = 0
    #: text frames the server answers (e.g. OKX's "ping" -> "pong"), read at any time
    replies: dict[str, str] = field(default_factory=dict)
    #: after the steps, send a WebSocket ping and wait for the client's pong
    ping_client: bool = False
    paths: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    connections: int = 0
    pongs: int = 0

    async def _handler(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.paths.append(ws.request.path)
        try:
            for _ in range(self.subscribe_count):
                self.received.append(await ws.recv())
        except ConnectionClosed:
            return
        reader = asyncio.create_task(self._read(ws))
        session = self.sessions[index] if index < len(self.sessions) else Session([])
        try:
            for step in session.steps:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    await ws.send(step)
            if self.ping_client:
                pong = await ws.ping()
                await asyncio.wait_for(pong, 2)
                self.pongs += 1
        except (ConnectionClosed, TimeoutError):  # the client went away (or test shutdown)
            reader.cancel()
            return
        if session.garbage:
            ws.transport.write(PROTOCOL_GARBAGE)
            await ws.wait_closed()
        elif session.close:
            await ws.close(code=1011, reason="test drop")
        else:
            await ws.wait_closed()
        reader.cancel()

    async def _read(self, ws: ServerConnection) -> None:
        try:
            async for message in ws:
                self.received.append(message)
                if message in self.replies:
                    await ws.send(self.replies[message])
        except ConnectionClosed:
            pass


@dataclass
class BroadcastVenue(_ServerThread):
    """One timeline of frames sent to every subscribed connection, like a real venue.

    Playback starts when the first client has subscribed. With ``max_connection_s`` a connection
    is closed at that age (Binance does this after 24 h).
    """

    frames: Sequence[str]
    #: pause before each frame, seconds (same length as ``frames``)
    gaps_s: Sequence[float]
    subscribe_count: int = 0
    max_connection_s: float | None = None
    connections: int = 0
    #: connections the server closed because they reached ``max_connection_s`` while playing
    expired: int = 0
    sent: int = 0
    done: bool = False
    _open: set[ServerConnection] = field(default_factory=set)

    async def _started(self) -> None:
        self._first = asyncio.Event()
        self._player = asyncio.create_task(self._play())

    async def _play(self) -> None:
        await self._first.wait()
        for gap_s, frame in zip(self.gaps_s, self.frames, strict=True):
            if gap_s > 0:
                await asyncio.sleep(gap_s)
            for ws in list(self._open):
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    self._open.discard(ws)
            self.sent += 1
        self.done = True

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            for _ in range(self.subscribe_count):
                await ws.recv()
        except ConnectionClosed:
            return
        self._open.add(ws)
        self._first.set()
        try:
            if self.max_connection_s is None:
                await ws.wait_closed()
            else:
                try:
                    await asyncio.wait_for(ws.wait_closed(), self.max_connection_s)
                except TimeoutError:
                    self._open.discard(ws)
                    self.expired += 0 if self.done else 1
                    await ws.close(code=1001, reason="connection age limit")
        finally:
            self._open.discard(ws)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(*feeds: Feed) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The feeds run while the block does; then they are cancelled, as a shutdown would."""
    tasks = [asyncio.create_task(f.run()) for f in feeds]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_until(feeds: Feed | Sequence[Feed], condition: Callable[[], bool],
                    timeout_s: float = 5.0) -> None:
    """Run the feed(s) until ``condition`` holds, then cancel them like a shutdown would."""
    feeds = [feeds] if isinstance(feeds, Feed) else list(feeds)
    async with running(*feeds) as tasks:
        await until(condition, timeout_s)
        for task in tasks:
            if task.done():
                task.result()  # a crashed feed fails the test with its own error


class CountingBackoff(Backoff):
    """Records which attempt numbers were asked for; tiny delays keep tests fast."""

    def __init__(self) -> None:
        super().__init__(initial_s=0.01, max_s=0.05)
        object.__setattr__(self, "attempts", [])

    def delay_s(self, attempt: int, rand: Callable[[], float] = lambda: 0.5) -> float:
        self.attempts.append(attempt)
        return super().delay_s(attempt, rand)
