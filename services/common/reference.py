"""Plain-Python reference of the detection semantics, the oracle the Flink job is checked against.

It reads the raw ``crypto-prices`` records in the order one Kafka partition delivers them and
applies DESIGN.md's rules: event time ``ts_ms``, watermark = max event time seen - watermark_ms
(advanced by every JSON record with a ``ts_ms``, as Flink's source does), tumbling windows, the
last valid quote per (window, symbol, venue) by event time (ties: the later record), records of
an already-fired window dropped as late, then every ordered venue pair.

In seed mode (``ARB_MODE=seed``) a venue's window value is the average trade price, used as
both bid and ask, with no sizes: the seed's "average price difference".

It models one partition (or one symbol per partition); with several partitions Flink's watermark
is the minimum across them, which can only make fewer records late.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.common.config import DetectionSettings
from services.common.exceptions import RecordError
from services.common.messages import Quote, Spread, Trade, parse_price_record
from services.common.spread import WindowQuote, is_alert, pair_spread


@dataclass
class Detection:
    """What the reference found: all pair spreads, the alerts, and what it skipped."""

    spreads: list[Spread] = field(default_factory=list)
    alerts: list[Spread] = field(default_factory=list)
    late_records: int = 0
    invalid_records: int = 0


def _record_ts_ms(raw: bytes | str) -> int | None:
    """The event time Flink's source would see: an integer ``ts_ms`` of a JSON object, if any."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    ts = obj.get("ts_ms") if isinstance(obj, dict) else None
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


def detect(raw_records: Iterable[bytes | str], settings: DetectionSettings) -> Detection:
    result = Detection()
    window_ms = settings.window_ms
    seed = settings.mode == "seed"
    # (window_start, symbol) -> exchange -> (ts_ms, quote)
    windows: dict[tuple[int, str], dict[str, tuple[int, Quote]]] = defaultdict(dict)
    # seed mode: (window_start, symbol) -> exchange -> [sum of prices, count, newest recv_ts_ms]
    averages: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(dict)
    max_ts: int | None = None
    for raw in raw_records:
        ts = _record_ts_ms(raw)
        watermark = None if max_ts is None else max_ts - settings.watermark_ms
        try:
            record = parse_price_record(raw)
        except RecordError:
            result.invalid_records += 1
            record = None
        if isinstance(record, Trade if seed else Quote):
            start = record.ts_ms - record.ts_ms % window_ms
            if watermark is not None and start + window_ms - 1 <= watermark:
                result.late_records += 1
            elif isinstance(record, Trade):
                acc = averages[(start, record.symbol)].setdefault(record.exchange, [0.0, 0, 0])
                acc[0] += record.price
                acc[1] += 1
                acc[2] = max(acc[2], record.recv_ts_ms)
            else:
                slot = windows[(start, record.symbol)]
                previous = slot.get(record.exchange)
                if previous is None or record.ts_ms >= previous[0]:
                    slot[record.exchange] = (record.ts_ms, record)
        if ts is not None:
            max_ts = ts if max_ts is None else max(max_ts, ts)
    per_window = {key: {ex: _window_quote(q) for ex, (_, q) in venues.items()}
                  for key, venues in windows.items()}
    for key, venues in averages.items():
        per_window[key] = {ex: _average_quote(ex, *acc) for ex, acc in venues.items()}
    for (start, symbol), quotes in sorted(per_window.items()):
        for buy in sorted(quotes):
            for sell in sorted(quotes):
                if buy == sell:
                    continue
                spread = pair_spread(symbol, start, start + window_ms, quotes[buy], quotes[sell],
                                     settings)
                result.spreads.append(spread)
                if is_alert(spread, settings):
                    result.alerts.append(spread)
    return result


def _window_quote(quote: Quote) -> WindowQuote:
    return WindowQuote(quote.exchange, quote.bid, quote.bid_size, quote.ask, quote.ask_size,
                       quote.recv_ts_ms, quote.depth)


def _average_quote(exchange: str, price_sum: float, count: float, newest_recv_ts_ms: float,
                   ) -> WindowQuote:
    average = price_sum / count
    return WindowQuote(exchange, average, None, average, None, int(newest_recv_ts_ms))
