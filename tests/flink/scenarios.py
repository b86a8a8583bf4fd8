"""Readable scenario data for the detection job: each block states what it must show.

Times are offsets in ms from ``T0`` (a window boundary); prices are USD after fx.
"""

from __future__ import annotations

import json
from typing import Any

T0 = 1_700_000_000_000
FEES = "coinbase=60,binance=10,kraken=20"
#: The configured ladder sizes (ARB_DEPTH_NOTIONALS_USD's default).
NOTIONALS_USD = (1000.0, 10000.0, 100000.0)


def quote(exchange: str, symbol: str, bid: float, ask: float, at_ms: int, *,
          recv_ms: int | None = None, refresh: bool = False, bid_size: float | None = 1.5,
          ask_size: float | None = 2.0, quote_ccy: str = "USD", fx_to_usd: float = 1.0,
          depth: Any = None) -> bytes:
    """A quote record; ``depth`` goes on the wire as given (see :func:`ladder`), left out when
    None, as an older producer does."""
    record: dict[str, Any] = {
        "v": 1, "type": "quote", "exchange": exchange, "symbol": symbol,
        "venue_symbol": symbol.replace("-", ""), "bid": bid, "bid_size": bid_size, "ask": ask,
        "ask_size": ask_size, "quote_ccy": quote_ccy, "fx_to_usd": fx_to_usd,
        "ts_ms": T0 + at_ms, "recv_ts_ms": T0 + (at_ms if recv_ms is None else recv_ms),
        "exchange_ts_ms": None, "refresh": refresh,
    }
    if depth is not None:
        record["depth"] = depth
    return json.dumps(record).encode()


def ladder(bid: float, ask: float, steps: tuple[float | None, ...],
           notionals_usd: tuple[float, ...] = NOTIONALS_USD) -> list[dict[str, Any]]:
    """A wire ladder: at each size the VWAP bid ``step`` below ``bid`` and the VWAP ask as far
    above ``ask`` (a book getting thinner away from the top); a None step: too thin there."""
    return [{"notional_usd": n,
             "bid_px": None if step is None else bid - step,
             "ask_px": None if step is None else ask + step}
            for n, step in zip(notionals_usd, steps, strict=True)]


def depth_window_records() -> list[bytes]:
    """The window path with ladders (1 s windows, fees 60 + 10 bps, >= $50 and >= 0 bps net).
    Buy Coinbase, sell Binance; every window's top of book passes: Coinbase 60,000 / 60,001,
    Binance 60,610 / 60,611 ($609 gross, 31.5 bps net)."""
    def cb(at: int, steps: tuple[float | None, ...] | None = (4, 19, 49), **kw: Any) -> bytes:
        depth = None if steps is None else ladder(60000, 60001, steps)
        return quote("coinbase", "SOL-USD", 60000, 60001, at, depth=depth, **kw)

    def bn(at: int, depth: Any, **kw: Any) -> bytes:
        return quote("binance", "SOL-USD", 60610, 60611, at, depth=depth, **kw)

    return [
        # D0: deep books: $100k passes (60,560 - 60,050 = $510, 84.9 bps gross, 14.9 net).
        cb(100), bn(200, ladder(60610, 60611, (10, 30, 50))),
        # D1: top of book passes, $10k does not: executable exactly $1k (60,605 - 60,003 =
        # $602, 30.3 bps net; at $10k 60,300 - 60,200 = $100, 16.6 bps gross < 70 of fees).
        cb(1100, (2, 199, 499)), bn(1200, ladder(60610, 60611, (5, 310, 610))),
        # D2: Binance sends no depth: no executable size, top of book as ever.
        cb(2100), bn(2200, None),
        # D3: Binance's ladder has other sizes (another producer's configuration): no depth.
        cb(3100), bn(3200, ladder(60610, 60611, (10, 30, 60), (1000.0, 5000.0, 100000.0))),
        # D4: two sizes of three, and an empty ladder on the other side: no depth either way.
        quote("coinbase", "SOL-USD", 60000, 60001, 4100, depth=[]),
        bn(4200, ladder(60610, 60611, (10, 30), NOTIONALS_USD[:2])),
        # D5: Binance's bids too thin for $100k: the largest that passes is $10k.
        cb(5100), bn(5200, ladder(60610, 60611, (10, 30, None))),
        # D6: a hostile ladder (a negative price) rejects the whole quote, so the window keeps
        # Binance's earlier one (in the job too: it checks every configured position).
        cb(6100), bn(6200, ladder(60610, 60611, (10, 30, 60))),
        bn(6300, [{"notional_usd": 1000.0, "bid_px": -1.0, "ask_px": 60700.0},
                  *ladder(60610, 60611, (10, 30, 60))[1:]]),
        # D9: moves the watermark past D6 in an unbounded run.
        cb(9500),
    ]


#: The depth tick scenario's books: Coinbase 60,000 / 60,001 with a ladder; Binance calm at
#: 60,000 / 60,002, shocked to 60,601 / 60,603 ($600 gross, 30 bps net of 60 + 10 bps).
DEPTH_TICK_CB = (60000.0, 60001.0)
DEPTH_TICK_SHOCK = (60601.0, 60603.0)
DEPTH_TICK_SYMBOL = "AVAX-USD"


def depth_tick_records() -> list[bytes]:
    """The tick path with ladders, one episode per block (blocks 3 s apart, gap 1 s).

    Coinbase refreshes every 500 ms, always with its ladder (asks 60,005 / 60,020 / 60,050).
    """
    cb_bid, cb_ask = DEPTH_TICK_CB
    up_bid, up_ask = DEPTH_TICK_SHOCK

    def bn(at: int, shocked: bool, depth: Any = None) -> tuple[int, bytes]:
        bid, ask = (up_bid, up_ask) if shocked else (60000.0, 60002.0)
        return at, quote("binance", DEPTH_TICK_SYMBOL, bid, ask, at, depth=depth)

    deep = ladder(up_bid, up_ask, (1, 21, 51))  # bids 60,600 / 60,580 / 60,550
    events: list[tuple[int, bytes]] = [
        bn(10, False, ladder(60000, 60002, (1, 21, 51))),
        # P: deep on both sides: $100k passes at once (60,550 - 60,050 = $500, 13.3 bps net);
        # then a passing quote only $1k deep (60,595 - 60,005 = $590 at $1k; at $10k
        # 60,100 - 60,020 = $80, 13.3 bps gross < 70 of fees): the episode's executable
        # size peaks at $100k, its first quote's.
        bn(1000, True, deep), bn(1100, True, ladder(up_bid, up_ask, (6, 501, 1001))),
        bn(1400, False, ladder(60000, 60002, (1, 21, 51))),
        # Q: a passing quote without depth right after one with it: the older ladder must not
        # show through (no executable size), then one whose ladder has other sizes.
        bn(4000, True, deep), bn(4100, True, None),
        bn(4200, True, ladder(up_bid, up_ask, (1, 21, 51), (1000.0, 5000.0, 100000.0))),
        bn(4400, False, None),
        # R: opened by a quote without depth (null in the opened record), deep later: the
        # closed record's executable size is the later quote's.
        bn(7000, True, None), bn(7100, True, deep), bn(7300, False, None),
        # S: Binance's bids too thin for $10k at all: $1k is the largest size that passes.
        bn(10_000, True, ladder(up_bid, up_ask, (1, None, None))), bn(10_200, False, None),
    ]
    events += [(at, quote("coinbase", DEPTH_TICK_SYMBOL, cb_bid, cb_ask, at,
                          depth=ladder(cb_bid, cb_ask, (4, 19, 49))))
               for at in range(0, 12_000, 500)]
    return [record for _, record in sorted(events, key=lambda e: e[0])]


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


#: The tick scenario's BTC-USD book when nothing happens: no spread either way.
TICK_CB = (60000.0, 60001.0)
TICK_BN = (60000.0, 60002.0)
#: Binance's bid during a shock: buy Coinbase at 60,001, sell Binance at 60,601: $600, 100 bps
#: gross, 30 bps net of 60 + 10 bps fees (the rule: >= $50 and net >= 0).
TICK_SHOCK_BID = 60601.0


def tick_scenario_records() -> list[bytes]:
    """Quotes a few ms to a few s apart, each block stating what the tick path must make of it.

    Coinbase refreshes its quote every 500 ms (as a live producer does) until 8 s; Binance moves.
    """
    cb_bid, cb_ask = TICK_CB
    bn_bid = TICK_BN[0]  # its ask is always 2 over its bid
    up = TICK_SHOCK_BID

    def bn(bid: float, at: int, **kw: object) -> tuple[int, bytes]:
        return at, quote("binance", "BTC-USD", bid, bid + 2, at, **kw)

    events: list[tuple[int, bytes]] = [
        (0, quote("coinbase", "BTC-USD", cb_bid, cb_ask, 0)),
        bn(bn_bid, 10),
        # A: a 300 ms opportunity inside the window [1000, 2000); the window path compares only
        # the last quotes of each window and never sees it. Two passing quotes.
        bn(up, 1100), bn(up + 10, 1150), bn(bn_bid, 1400),
        # B: flickering around the threshold every 50 ms: one episode, not five (Binance's five
        # passes and Coinbase's refresh at 3000, which passes too).
        *[bn(up if i % 2 == 0 else bn_bid, 3000 + 50 * i) for i in range(10)],
        # ... with Kraken quoting Coinbase's prices in between: the pair's previous evaluation
        # is then not the symbol's previous quote, and Kraken's own pairs are evaluated too.
        *[(3025 + 100 * i, quote("kraken", "BTC-USD", cb_bid, cb_ask, 3025 + 100 * i))
          for i in range(5)],
        # C: passing again 800 ms after it stopped (within the 1 s gap): the same episode; 1.5 s
        # after: a new one, with no sizes on either side (Coinbase's refreshes from 7000 carry no
        # ask size): no profit estimate.
        bn(up, 5000), bn(bn_bid, 5100), bn(up, 5900), bn(bn_bid, 6000),
        bn(up, 7500, bid_size=None), bn(bn_bid, 7600),
        # D: Coinbase silent since its 7500 refresh: stale at 10,500, Binance's shock pairs with
        # nothing.
        bn(up, 10_500), bn(bn_bid, 10_600),
        # E: both back; the episode ends when its older side goes stale (13,000), as nothing
        # evaluates the pair until 16,000.
        (11_000, quote("coinbase", "BTC-USD", cb_bid, cb_ask, 11_000)),
        bn(up, 11_100),
        bn(bn_bid, 16_000), (16_100, quote("coinbase", "BTC-USD", cb_bid, cb_ask, 16_100)),
        # F: Kraken's receive times an hour, then 3 s behind, quoting $999 over Coinbase's ask:
        # never live against the others, no phantom opportunity. (A clock jumping *ahead* cannot
        # pair either, but it moves the watermark, and so the event-time windows, with it.)
        (16_200, quote("kraken", "BTC-USD", 61000, 61001, 16_200 - 3_600_000)),
        (16_300, quote("kraken", "BTC-USD", 61000, 61001, 16_300 - 3_000)),
        (16_400, quote("coinbase", "BTC-USD", cb_bid, cb_ask, 16_400)),
        # G: a 1000 bps spread is a bad quote: never an opportunity.
        bn(66000, 18_000), bn(bn_bid, 18_100),
        # H: the reverse direction (buy Binance at 60,002, sell Coinbase at 60,700), and ETH-USD
        # at the same time, open until the input ends.
        (19_000, quote("coinbase", "BTC-USD", 60700, 60701, 19_000)),
        (19_005, quote("coinbase", "ETH-USD", 3000, 3000.5, 19_005)),
        (19_010, quote("binance", "ETH-USD", 3100, 3100.5, 19_010)),
        (19_200, quote("coinbase", "BTC-USD", cb_bid, cb_ask, 19_200)),
        # Broken input in the middle of the stream: skipped, never fatal.
        (19_300, b"this is not json"),
        (19_300, b'{"v":1,"type":"quote","exchange":"binance"}'),
        (19_300, quote("binance", "BTC-USD", 60200, 60100, 19_300)),  # crossed book
        (19_300, quote("binance", "BTC-USD", -5, 60100, 19_300)),  # negative price
        (19_300, trade("binance", "BTC-USD", 99999, 19_300)),  # trades are not quotes
    ]
    events += [(at, quote("coinbase", "BTC-USD", cb_bid, cb_ask, at, recv_ms=0, refresh=True,
                          ask_size=None if at >= 7000 else 2.0))
               for at in range(500, 8000, 500)]
    # stable sort: records of the same ms keep the order above
    return [record for _, record in sorted(events, key=lambda e: e[0])]
