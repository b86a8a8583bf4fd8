"""A local WebSocket server (real socket, own thread) that answers the first upgrades with an
HTTP error, as a venue refusing a client does (403 for a blocked region, 429 when rate
limited), and then accepts and plays frames verbatim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.producer.ws_venue import _ServerThread


@dataclass(frozen=True)
class Refusal:
    """One refused upgrade: its HTTP status and extra headers (``Retry-After`` ...)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class RefusingVenue(_ServerThread):
    """Refuses upgrade ``i`` with ``refusals[i]``; later ones are accepted, read
    ``subscribe_count`` frames and get ``frames``, then the connection stays open."""

    refusals: list[Refusal]
    frames: list[str] = field(default_factory=list)
    subscribe_count: int = 0
    #: monotonic time of every upgrade request, refused or not
    attempts_s: list[float] = field(default_factory=list)
    accepted: int = 0

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        del request
        index = len(self.attempts_s)
        self.attempts_s.append(time.monotonic())
        if index >= len(self.refusals):
            return None  # go on with the handshake
        refusal = self.refusals[index]
        response = ws.respond(refusal.status, f"refused: HTTP {refusal.status}\n")
        for name, value in refusal.headers:
            response.headers[name] = value
        return response

    async def _handler(self, ws: ServerConnection) -> None:
        self.accepted += 1
        try:
            for _ in range(self.subscribe_count):
                await ws.recv()
            for frame in self.frames:
                await ws.send(frame)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
