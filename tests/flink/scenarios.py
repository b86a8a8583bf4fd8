"""Readable scenario data for the detection job: each block states what it must show.

Times are offsets in ms from ``T0`` (a window boundary); prices are USD after fx.
"""

from __future__ import annotations

import json
from typing import Any

T0 = 1_700_000_000_000
FEES = "coinbase=60,binance=10,kraken=20"


def quote(exchange: str, symbol: str, bid: float, ask: float, at_ms: int, *,
          recv_ms: int | None = None, refresh: bool = False, bid_size: float | None = 1.5,
          ask_size: float | None = 2.0, quote_ccy: str = "USD", fx_to_usd: float = 1.0) -> bytes:
    record: dict[str, Any] = {
        "v": 1, "type": "quote", "exchange": exchange, "symbol": symbol,
        "venue_symbol": symbol.replace("-", ""), "bid": bid, "bid_size": bid_size, "ask": ask,
        "ask_size": ask_size, "quote_ccy": quote_ccy, "fx_to_usd": fx_to_usd,
        "ts_ms": T0 + at_ms, "recv_ts_ms": T0 + (at_ms if recv_ms is None else recv_ms),
        "exchange_ts_ms": None, "refresh": refresh,
    }
    return json.dumps(record).encode()


def trade(exchange: str, symbol: str, price: float, at_ms: int) -> bytes:
    return json.dumps({
        "v": 1, "type": "trade", "exchange": exchange, "symbol": symbol, "venue_symbol": symbol,
        "price": price, "size": 0.1, "side": "buy", "trade_id": str(at_ms), "quote_ccy": "USD",
        "fx_to_usd": 1.0, "ts_ms": T0 + at_ms, "recv_ts_ms": T0 + at_ms, "exchange_ts_ms": None,
    }).encode()


def window_records() -> list[bytes]:
    """All scenarios on one partition, in the order Kafka delivers them."""
    return [
        # W0 [0,1000): a real opportunity, an out-of-order update inside the watermark, and a
        # second symbol. Buy coinbase at 60006, sell binance at 60610: $604, net of 70 bps fees > 0.
        quote("coinbase", "BTC-USD", 60000, 60001, 100),
        quote("binance", "BTC-USD", 60600, 60601, 200),
        quote("binance", "ETH-USD", 3000.1, 3000.2, 250),
        quote("coinbase", "ETH-USD", 3000.0, 3000.3, 260),
        trade("binance", "BTC-USD", 60600.5, 300),
        quote("binance", "BTC-USD", 60610, 60611, 800),
        quote("coinbase", "BTC-USD", 60005, 60006, 700),  # out of order, 100 ms < watermark
        # W1 [1000,2000): gross $100 (16.7 bps) is eaten by 70 bps of fees -> negative net.
        quote("coinbase", "BTC-USD", 59999, 60000, 1100),
        quote("binance", "BTC-USD", 60100, 60101, 1200),
        # Broken input in the middle of the stream: skipped, never fatal.
        b"this is not json",
        b'{"v":1,"type":"quote","exchange":"binance"}',
        quote("kraken", "BTC-USD", 60200, 60100, 1300),  # crossed book
        quote("kraken", "BTC-USD", -5, 60100, 1310),  # negative price
        b'{"v":1,"type":"quote","exchange":"kraken","symbol":"BTC-USD","bid":"x","ts_ms":1}',
        # W2 [2000,3000): 1000 bps is a bad quote (guard 500): a spread, never an alert.
        quote("coinbase", "BTC-USD", 59999, 60000, 2100),
        quote("binance", "BTC-USD", 66000, 66001, 2200),
        # W3 [3000,4000): USDT quoted at a 0.2% discount; after fx no spread is left.
        quote("coinbase", "BTC-USD", 59999, 60000, 3100),
        quote("binance", "BTC-USD", 59999.2, 60000.1, 3200, quote_ccy="USDT", fx_to_usd=0.998),
        # W4 [4000,5000): binance silent (no update, no refresh): no pair at all.
        quote("coinbase", "BTC-USD", 59999, 60000, 4100),
        quote("coinbase", "BTC-USD", 59998, 59999, 4600),
        # W5 [5000,6000): binance quiet but live: only a refresh of its 3200 quote, still counts.
        quote("coinbase", "BTC-USD", 59990, 59991, 5100),
        quote("binance", "BTC-USD", 60100, 60101, 5500, recv_ms=3200, refresh=True),
        # W6 [6000,7000): a record for W5 arriving 1.4 s late is dropped; sizes unknown on one side.
        quote("coinbase", "BTC-USD", 60000, 60001, 6500, bid_size=None, ask_size=None),
        quote("binance", "BTC-USD", 59000, 59001, 5100),  # late: W5 already fired
        quote("binance", "BTC-USD", 60070, 60071, 6600),
        # W7 [7000,8000): three venues, two symbols: every ordered pair.
        quote("coinbase", "BTC-USD", 60000, 60001, 7100),
        quote("binance", "BTC-USD", 60080, 60081, 7150),
        quote("kraken", "BTC-USD", 59900, 59901, 7200, bid_size=0.25, ask_size=0.5),
        quote("coinbase", "ETH-USD", 3000, 3000.5, 7300),
        quote("binance", "ETH-USD", 3060, 3060.5, 7400),
        quote("kraken", "ETH-USD", 2990, 2990.5, 7450),
        # W9: a last record moves the watermark past W7 in an unbounded run.
        quote("coinbase", "BTC-USD", 60000, 60001, 9500),
    ]


#: Gross spread (sell bid - buy ask, $) per window of the episode scenario: positive = buy
#: Coinbase, sell Binance; negative = the other way round. Fees are 60 + 10 = 70 bps, so on a
#: $60,001 ask a spread alerts (>= $50 and net >= 0 bps) from $420.01 up. Windows not listed
#: have a $100 spread: no alert.
EPISODE_SPREADS_USD = {
    1: 500, 2: 800, 3: 650,  # episode A opens ...
    5: 450,  # ... one quiet window (W4) is within a 2-window gap: still episode A
    9: 700, 10: 520,  # three quiet windows (W6-W8): a new episode B
    12: -600,  # the reverse direction, one window only: episode C
}
EPISODE_BASE_ASK = 60001.0


def episode_scenario_records() -> list[bytes]:
    """Coinbase and Binance BTC-USD quotes in windows W0..W14 (both venues in every window),
    plus an ETH-USD episode in W2-W3 overlapping episode A in time."""
    records = []
    for w in range(15):
        spread = EPISODE_SPREADS_USD.get(w, 100)
        at = w * 1000
        cb_bid, cb_ask = EPISODE_BASE_ASK - 1, EPISODE_BASE_ASK
        if spread >= 0:  # buy Coinbase at its ask, sell Binance at its bid
            bn_bid = cb_ask + spread
            bn_ask = bn_bid + 1
        else:  # buy Binance at its ask, sell Coinbase at its bid
            bn_ask = EPISODE_BASE_ASK
            bn_bid = bn_ask - 1
            cb_bid, cb_ask = bn_ask - spread, bn_ask - spread + 1
        records.append(quote("coinbase", "BTC-USD", cb_bid, cb_ask, at + 100))
        records.append(quote("binance", "BTC-USD", bn_bid, bn_ask, at + 600))
        eth_spread = 60 if w in (2, 3) else 1  # 60 / 3000.5 = 200 bps gross, 130 net
        records.append(quote("coinbase", "ETH-USD", 3000, 3000.5, at + 200))
        records.append(quote("binance", "ETH-USD", 3000.5 + eth_spread, 3001 + eth_spread,
                             at + 700))
    return records
