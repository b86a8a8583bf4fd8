"""The tick path's reference on hand-built quotes: pairing, liveness, episodes opened and
closed with their gap, statistics, the capturable judgement, measured latency and the wire
format. (The Flink job is checked against this in tests/flink/test_tick_job.py.)"""

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
from services.common.messages import Quote, parse_episode, to_json
from services.common.ticks import evaluate_ticks, ordered_pairs

T0 = 1_700_000_000_000
SETTINGS = DetectionSettings(venues=("coinbase", "binance"), min_spread_usd=1.0,
                             taker_fee_bps={"coinbase": 0.0, "binance": 0.0},
                             max_spread_bps=2000.0, stale_ms=1000, episode_gap_ms=200,
                             default_feed_latency_ms=200,
                             feed_latency_ms={"binance": 400}, execution_ms=300)


def quote(exchange: str, at_ms: int, bid: float = 100.0, *, ask: float | None = None,
          ts_ms: int | None = None, size: float | None = 1.0) -> bytes:
    """A quote received at T0 + at_ms (``ts_ms`` overrides its event time)."""
    ts = T0 + at_ms if ts_ms is None else ts_ms
    return to_json(Quote(exchange=exchange, symbol="BTC-USD", venue_symbol="X", bid=bid,
                         bid_size=size, ask=bid + 1 if ask is None else ask, ask_size=size,
                         quote_ccy="USD", fx_to_usd=1.0, ts_ms=ts, recv_ts_ms=ts,
                         exchange_ts_ms=None))


def episodes(records: list[bytes], settings: DetectionSettings = SETTINGS):
    return build_episodes(evaluate_ticks(records, settings), settings)


def test_every_ordered_pair_with_the_quotes_venue_is_evaluated() -> None:
    settings = DetectionSettings(venues=("coinbase", "binance", "kraken"))
    evaluations = list(evaluate_ticks([quote("coinbase", 0), quote("binance", 1),
                                       quote("okx", 2)], settings))  # okx: not configured

    assert ordered_pairs(["a", "b", "a"]) == [("a", "b"), ("b", "a")]
    assert [(e.buy_exchange, e.sell_exchange, e.live) for e in evaluations[-4:]] == [
        ("coinbase", "binance", True), ("binance", "coinbase", True),
        ("binance", "kraken", False), ("kraken", "binance", False)]
    assert len(evaluations) == 8  # 4 pairs include coinbase, 4 binance


def test_a_pass_lasts_until_the_quote_that_ends_it() -> None:
    # Binance's bid $5 over Coinbase's ask for 150 ms, then $3, then back.
    [episode] = episodes([quote("coinbase", 0), quote("binance", 10),
                          quote("binance", 100, 106.0), quote("binance", 200, 104.0),
                          quote("binance", 250, 100.0)])

    assert episode.id == f"BTC-USD|coinbase|binance|{T0 + 100}"
    assert (episode.start_ms, episode.end_ms, episode.duration_ms) == (T0 + 100, T0 + 250, 150)
    assert episode.quotes == 2
    assert episode.peak_spread_usd == 5.0
    assert episode.peak_net_spread_bps == pytest.approx(5 / 101 * 1e4)  # on the 101 ask
    assert episode.mean_net_spread_bps == pytest.approx(4 / 101 * 1e4)
    assert episode.peak_est_profit_usd == pytest.approx(5.0)
    assert episode.newest_recv_ts_ms == T0 + 200


def test_the_gap_joins_flicker_and_splits_after_it() -> None:
    # a pass every 100 ms, 50 ms long: one episode; 300 ms later (gap 200): a second one
    records = [quote("coinbase", 0)]
    for at in range(100, 600, 100):
        records += [quote("binance", at, 106.0), quote("binance", at + 50, 100.0)]
    records += [quote("binance", 850, 106.0), quote("binance", 900, 100.0)]

    first, second = episodes(records)

    assert (first.start_ms, first.end_ms, first.quotes) == (T0 + 100, T0 + 550, 5)
    assert (second.start_ms, second.end_ms) == (T0 + 850, T0 + 900)


def test_stale_or_missing_venues_never_pair() -> None:
    records = [quote("binance", 0, 106.0),  # no Coinbase quote yet
               quote("coinbase", 100, ts_ms=T0 + 100 - 3_600_000),  # clock an hour behind
               quote("binance", 200, 106.0),
               quote("binance", 250),
               quote("coinbase", 300),
               quote("binance", 1400, 106.0)]  # Coinbase's 300 quote is 1100 ms old: stale

    assert episodes(records) == []


def test_a_pass_with_no_later_evaluation_ends_when_its_older_side_goes_stale() -> None:
    # nothing evaluates the pair for 5 s: the pass ended when Coinbase's quote went stale
    [episode] = episodes([quote("coinbase", 0), quote("binance", 300, 106.0),
                          quote("binance", 5300, 100.0)])

    assert (episode.end_ms, episode.duration_ms) == (T0 + 1000, 700)


def test_bad_quotes_and_rule_thresholds() -> None:
    wide = DetectionSettings(**{**SETTINGS.__dict__, "max_spread_bps": 400.0})
    assert episodes([quote("coinbase", 0), quote("binance", 10, 106.0)], wide) == []  # 500 bps
    netted = DetectionSettings(**{**SETTINGS.__dict__, "min_net_bps": 600.0})
    assert episodes([quote("coinbase", 0), quote("binance", 10, 106.0)], netted) == []
    # broken records are skipped
    assert episodes([b"not json", quote("coinbase", 0), b"{}",
                     quote("binance", 10, 106.0, ask=105.0)]) == []  # crossed: invalid


def test_records_are_opened_then_closed_per_episode() -> None:
    records = episode_records(evaluate_ticks(
        [quote("coinbase", 0), quote("binance", 100, 106.0), quote("binance", 150, 108.0),
         quote("binance", 200, 100.0)], SETTINGS), SETTINGS)

    assert [(r.is_open, r.quotes, r.peak_spread_usd, r.duration_ms) for r in records] == [
        (True, 1, 5.0, 0), (False, 2, 7.0, 100)]
    assert records[0].id == records[1].id
    assert latest_by_id(reversed(records)) == [records[1]]
    assert latest_by_id(records[:1]) == [records[0]]


def test_capturable_needs_the_slower_venue_latency_plus_execution() -> None:
    # binance 400 ms p99 + 300 ms execution = 700 ms
    short, long = episodes([quote("coinbase", 0), quote("binance", 10, 106.0),
                            quote("binance", 600, 100.0), quote("coinbase", 800),
                            quote("binance", 900, 106.0), quote("binance", 1600, 100.0)])

    assert (short.duration_ms, long.duration_ms) == (590, 700)
    assert short.required_ms == long.required_ms == 700
    assert not short.capturable
    assert long.capturable
    slow = rejudge(long, {"coinbase": 900.5, "binance": 100}, 200, fallback_latency_ms=50)
    assert (slow.required_ms, slow.capturable) == (1101, False)
    assert required_ms(0, 0, 0) == 0


def test_measured_p99_skips_refreshes_and_missing_venue_times() -> None:
    def venue_quote(exchange: str, latency_ms: int | None, refresh: bool = False) -> Quote:
        return Quote(exchange=exchange, symbol="BTC-USD", venue_symbol="X", bid=1.0,
                     bid_size=1.0, ask=2.0, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0,
                     ts_ms=T0, recv_ts_ms=T0,
                     exchange_ts_ms=None if latency_ms is None else T0 - latency_ms,
                     refresh=refresh)

    records = [venue_quote("coinbase", ms) for ms in range(1, 101)]  # 1..100 ms
    records += [venue_quote("coinbase", 5000, refresh=True), venue_quote("binance", None)]

    assert feed_latency_p99_ms(records) == {"coinbase": 99.0}


def test_wire_format_round_trip_and_rejections() -> None:
    [episode] = episodes([quote("coinbase", 0, size=None), quote("binance", 10, 106.0,
                                                                  size=None)])

    assert episode.peak_est_profit_usd is None
    assert parse_episode(to_json(episode)) == episode
    obj = json.loads(to_json(episode))
    for key, bad in (("capturable", "yes"), ("quotes", 1.5), ("id", None)):
        with pytest.raises(RecordError):
            parse_episode(json.dumps({**obj, key: bad}))


# -- depth: the executable size of an episode ---------------------------------------------------

DEPTH = DetectionSettings(venues=("coinbase", "binance"), min_spread_usd=1.0,
                          taker_fee_bps={"coinbase": 0.0, "binance": 0.0}, max_spread_bps=2000.0,
                          stale_ms=1000, episode_gap_ms=200, depth_notionals_usd=(100.0, 1000.0))


def deep_quote(exchange: str, at_ms: int, bid: float, steps: tuple[float, ...] | None) -> bytes:
    """A quote (ask = bid + 1) whose ladder's VWAPs lie ``steps`` beyond its top of book."""
    from services.common.messages import DepthLevel

    depth = None if steps is None else tuple(
        DepthLevel(n, bid - s, bid + 1 + s) for n, s in zip((100.0, 1000.0), steps, strict=True))
    return to_json(Quote(exchange=exchange, symbol="BTC-USD", venue_symbol="X", bid=bid,
                         bid_size=1.0, ask=bid + 1, ask_size=1.0, quote_ccy="USD",
                         fx_to_usd=1.0, ts_ms=T0 + at_ms, recv_ts_ms=T0 + at_ms,
                         exchange_ts_ms=None, depth=depth))


def test_an_episode_carries_the_opening_quotes_then_the_largest_executable_size() -> None:
    # Coinbase asks 101 at the top, 101.5 / 102 for $100 / $1k. Binance bids 105: $1k passes
    # (105 - 2 = 103 > 102); then only $100 does (103.5 - 0.5 = 103 over 101.5; 103.5 - 3 =
    # 100.5 < 102); then no ladder at all, which must not let the $1k one through.
    records = [deep_quote("coinbase", 0, 100.0, (0.5, 1.0)),
               deep_quote("binance", 10, 105.0, (1.0, 2.0)),
               deep_quote("binance", 20, 103.5, (0.5, 3.0)),
               deep_quote("binance", 30, 104.0, None)]
    evaluations = [e for e in evaluate_ticks(records, DEPTH)
                   if (e.buy_exchange, e.passing) == ("coinbase", True)]
    assert [None if e.executable is None else e.executable.usd for e in evaluations] == [
        1000.0, 100.0, None]
    assert evaluations[0].executable.size == 1000.0 / 102.0
    assert evaluations[0].executable.profit_usd == pytest.approx(1000.0 * 1 / 102)
    opened, closed = episode_records(evaluate_ticks(records, DEPTH), DEPTH)
    assert (opened.is_open, opened.executable_usd, opened.executable_size) == (
        True, 1000.0, 1000.0 / 102.0)
    assert (closed.executable_usd, closed.executable_size) == (1000.0, 1000.0 / 102.0)
    assert closed.executable_profit_usd == pytest.approx(1000.0 * 1 / 102)
    assert parse_episode(to_json(closed)) == closed
