"""Mock exchanges that a test drives quote by quote: real WebSocket servers speaking Coinbase's
``ticker`` and Binance's ``bookTicker`` wire formats, so the real producer reads them as it
would the venues.

A test calls :meth:`MockExchange.quote` from its own thread; the frame goes to every connected
client at once and the call returns the monotonic time it was sent (for latency).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tests.producer.ws_venue import _ServerThread


def coinbase_ticker(product_id: str, bid: float, ask: float, sequence: int,
                    size: float = 1.5) -> str:
    """A ticker frame as Coinbase sends it today (sizes included)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({
        "type": "ticker", "sequence": sequence, "product_id": product_id,
        "price": f"{bid:.2f}", "open_24h": "0", "volume_24h": "0", "low_24h": "0",
        "high_24h": "0", "volume_30d": "0", "best_bid": f"{bid:.2f}",
        "best_bid_size": f"{size:.8f}", "best_ask": f"{ask:.2f}",
        "best_ask_size": f"{size:.8f}", "side": "buy", "time": now,
        "trade_id": sequence, "last_size": "0.001",
    })


def binance_book_ticker(symbol: str, bid: float, ask: float, update_id: int,
                        size: float = 1.5) -> str:
    """A combined-stream bookTicker frame, as Binance spot sends it."""
    return json.dumps({
        "stream": f"{symbol.lower()}@bookTicker",
        "data": {"u": update_id, "s": symbol, "b": f"{bid:.8f}", "B": f"{size:.8f}",
                 "a": f"{ask:.8f}", "A": f"{size:.8f}"},
    })


#: venue -> (frame builder, canonical symbol -> venue symbol)
FORMATS = {
    "coinbase": (coinbase_ticker, {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}),
    "binance": (binance_book_ticker, {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}),
}


class MockExchange(_ServerThread):
    """One venue on 127.0.0.1 (own thread); reads and ignores whatever clients send."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._build, self._symbols = FORMATS[venue]
        self._sequence = itertools.count(1_000_000)
        self._clients: set[ServerConnection] = set()
        self._connected = threading.Event()
        self.sent = 0

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def quote(self, symbol: str, bid: float, ask: float) -> float:
        """Send a best bid/ask of ``symbol`` (canonical) to every client; monotonic send time."""
        frame = self._build(self._symbols[symbol], bid, ask, next(self._sequence))
        return asyncio.run_coroutine_threadsafe(self._broadcast(frame), self._loop).result(5)

    async def _broadcast(self, frame: str) -> float:
        sent_s = time.monotonic()
        for ws in list(self._clients):
            try:
                await ws.send(frame)
            except ConnectionClosed:
                self._clients.discard(ws)
        self.sent += 1
        return sent_s

    async def _handler(self, ws: ServerConnection) -> None:
        self._clients.add(ws)
        self._connected.set()
        try:
            async for _ in ws:  # subscribe messages: every product is served anyway
                pass
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)
