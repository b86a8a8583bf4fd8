"""The episode reference on hand-built alerts: grouping, gaps, statistics, the capturable
judgement, measured latency and the wire format."""

from __future__ import annotations

import json

import pytest

from services.common.config import DetectionSettings
from services.common.episodes import (
    build_episodes,
    episode_records,
    feed_latency_p99_ms,
    latest_by_id,
    rejudge,
    required_ms,
)
from services.common.exceptions import RecordError
from services.common.messages import Quote, Spread, parse_episode, spread_id, to_json

T0 = 1_700_000_000_000


def alert(window: int, net_bps: float, *, symbol: str = "BTC-USD", buy: str = "coinbase",
          sell: str = "binance", profit: float | None = 10.0, window_ms: int = 1000) -> Spread:
    """An alert of window ``window`` (its end is T0 + (window + 1) * window_ms)."""
    end = T0 + (window + 1) * window_ms
    return Spread(
        id=spread_id(symbol, end, buy, sell), symbol=symbol, window_start_ms=end - window_ms,
        window_end_ms=end, buy_exchange=buy, buy_ask=100.0, buy_size=1.0, sell_exchange=sell,
        sell_bid=101.0, sell_size=1.0, spread_usd=net_bps / 10, spread_bps=net_bps + 70,
        net_spread_bps=net_bps, max_size=1.0, est_profit_usd=profit, quote_age_ms=100,
        newest_recv_ts_ms=end - 50,
    )


SETTINGS = DetectionSettings(episode_gap_windows=2, default_feed_latency_ms=200,
                             feed_latency_ms={"binance": 400}, execution_ms=300)


def test_consecutive_windows_are_one_episode_with_duration_and_peak() -> None:
    alerts = [alert(1, 5.0, profit=3.0), alert(2, 9.0, profit=None), alert(3, 4.0, profit=7.0)]

    [episode] = build_episodes(alerts, SETTINGS)

    assert episode.id == f"BTC-USD|coinbase|binance|{T0 + 2000}"
    assert (episode.start_ms, episode.first_window_end_ms, episode.end_ms) == (
        T0 + 1000, T0 + 2000, T0 + 4000)
    assert (episode.duration_ms, episode.windows, episode.confirmed_ms) == (3000, 3, 2000)
    assert episode.peak_net_spread_bps == 9.0
    assert episode.mean_net_spread_bps == pytest.approx(6.0)
    assert episode.peak_est_profit_usd == 7.0  # unknown profits are left out
    assert episode.newest_recv_ts_ms == T0 + 4000 - 50
    assert not episode.is_open


def test_gap_within_setting_joins_longer_gap_splits() -> None:
    # windows 1, 3 (one missing: 2 windows apart) and 7 (four windows after 3)
    alerts = [alert(7, 1.0), alert(1, 1.0), alert(3, 1.0)]  # any order

    two = build_episodes(alerts, SETTINGS)
    one = build_episodes(alerts, DetectionSettings(episode_gap_windows=1))

    assert [(e.first_window_end_ms - T0, e.windows) for e in two] == [(2000, 2), (8000, 1)]
    assert [(e.first_window_end_ms - T0, e.windows) for e in one] == [
        (2000, 1), (4000, 1), (8000, 1)]


def test_directions_and_symbols_are_separate_episodes() -> None:
    alerts = [alert(1, 1.0), alert(1, 1.0, buy="binance", sell="coinbase"),
              alert(2, 1.0, symbol="ETH-USD"), alert(2, 1.0)]

    episodes = build_episodes(alerts, SETTINGS)

    assert sorted((e.direction, e.windows) for e in episodes) == [
        (("BTC-USD", "binance", "coinbase"), 1),
        (("BTC-USD", "coinbase", "binance"), 2),
        (("ETH-USD", "coinbase", "binance"), 1),
    ]


def test_records_are_opened_then_closed_per_episode() -> None:
    records = episode_records([alert(1, 5.0), alert(2, 9.0)], SETTINGS)

    assert [(r.is_open, r.windows, r.peak_net_spread_bps) for r in records] == [
        (True, 1, 5.0), (False, 2, 9.0)]
    assert records[0].id == records[1].id
    assert latest_by_id(reversed(records)) == [records[1]]
    assert latest_by_id(records[:1]) == [records[0]]


def test_capturable_needs_the_slower_venue_latency_plus_execution() -> None:
    # binance 400 ms p99 + 300 ms execution = 700 ms; one window confirms 0 ms, two 1000 ms
    [short] = build_episodes([alert(1, 1.0)], SETTINGS)
    [long] = build_episodes([alert(1, 1.0), alert(2, 1.0)], SETTINGS)

    assert short.required_ms == long.required_ms == 700
    assert not short.capturable
    assert long.capturable
    slow = rejudge(long, {"coinbase": 900.5, "binance": 100}, 200, fallback_latency_ms=50)
    assert (slow.required_ms, slow.capturable) == (1101, False)
    assert required_ms(0, 0, 0) == 0


def test_measured_p99_skips_refreshes_and_missing_venue_times() -> None:
    def quote(exchange: str, latency_ms: int | None, refresh: bool = False) -> Quote:
        return Quote(exchange=exchange, symbol="BTC-USD", venue_symbol="X", bid=1.0,
                     bid_size=1.0, ask=2.0, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0,
                     ts_ms=T0, recv_ts_ms=T0,
                     exchange_ts_ms=None if latency_ms is None else T0 - latency_ms,
                     refresh=refresh)

    records = [quote("coinbase", ms) for ms in range(1, 101)]  # 1..100 ms
    records += [quote("coinbase", 5000, refresh=True), quote("binance", None)]

    assert feed_latency_p99_ms(records) == {"coinbase": 99.0}


def test_wire_format_round_trip_and_rejections() -> None:
    [episode] = build_episodes([alert(1, 5.0, profit=None)], SETTINGS)

    assert parse_episode(to_json(episode)) == episode
    obj = json.loads(to_json(episode))
    for key, bad in (("capturable", "yes"), ("windows", 1.5), ("id", None)):
        with pytest.raises(RecordError):
            parse_episode(json.dumps({**obj, key: bad}))
