"""Entry point: ``python -m services.producer [live|replay] [options]``.

live    read the venues' WebSockets (ARB_VENUES, ARB_SYMBOLS, ARB_<VENUE>_WS_URL) into Kafka;
        stablecoin-quoted markets are converted at a live rate where a configured venue lists
        one (USDT-USD ...), else at ARB_USDT_USD / ARB_USDC_USD.
replay  publish the recorded fixtures of the ARB_VENUES venues (one recording each) through the
        same parsers, aligned, scaled and optionally
        shocked (see services/producer/replay.py: any spread it shows is an artefact); a
        folder written by ``record`` is replayed as recorded, venues in their real timing.
record  read the venues' WebSockets like live and write every frame to files in the fixtures
        format (--out, rotated at --max-file-mb), to replay or report on later; no Kafka.

Configuration comes from the environment (and ``.env``); metrics and /healthz are served on
ARB_PRODUCER_METRICS_PORT. A non-looping replay exits 0 once every record was delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from confluent_kafka import KafkaException

from services.common.config import KafkaSettings, ProducerSettings, describe, load_dotenv
from services.common.exceptions import ConfigError
from services.common.kafka import ensure_topics
from services.common.logging import configure_logging
from services.common.metrics import MetricsServer
from services.producer.connector import USDC, USDT, Venue
from services.producer.feed import Feed, FeedOptions, FrameTap, RestTap, run_feeds
from services.producer.fx import FX_MARKETS, FxRates
from services.producer.metrics import ProducerMetrics, default_metrics
from services.producer.publisher import KafkaPublisher
from services.producer.recorder import DiscardSink, FrameRecorder
from services.producer.replay import (
    Shock,
    default_fixtures_dir,
    iter_replay,
    parse_speed,
    plan_replay,
    publish_replay,
    recordings_for,
    recordings_in,
)
from services.producer.venues import get_venue

log = structlog.get_logger("services.producer")


def _shock(text: str) -> Shock:
    try:
        return Shock.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _speed(text: str) -> float | None:
    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="arb producer",
        description="Publish exchange quotes and trades to Kafka crypto-prices.",
    )
    parser.add_argument("mode", nargs="?", choices=("live", "replay", "record"), default="live")
    parser.add_argument("--speed", type=_speed, default=1.0, metavar="max|N",
                        help="replay pace: 1 = real time, 10 = ten times faster, max = no pause")
    parser.add_argument("--shock", type=_shock, action="append", default=[], metavar="SPEC",
                        help="replay price shock EXCHANGE:SYMBOL:DELTA_USD@START_S:DURATION_S, "
                             "e.g. binance:BTC-USD:+150@10:2 (repeatable)")
    parser.add_argument("--loop", action="store_true",
                        help="replay: repeat the whole replay forever, shifted in time")
    parser.add_argument("--fixtures-dir", type=Path, default=None,
                        help="replay: recorded fixtures (default ARB_FIXTURES_DIR or "
                             "../shared/fixtures/exchanges)")
    parser.add_argument("--out", type=Path, default=Path("data/recorded"),
                        help="record: folder for the recorded files (default data/recorded)")
    parser.add_argument("--max-file-mb", type=float, default=100.0,
                        help="record: start a new file once one reaches this size (MB)")
    return parser.parse_args(argv)


def run_replay(
    args: argparse.Namespace,
    settings: ProducerSettings,
    publisher: KafkaPublisher,
    metrics: ProducerMetrics,
    stop: threading.Event,
) -> int:
    """Build the replay, publish it paced, flush; 0 when everything was delivered."""
    fixtures = args.fixtures_dir or default_fixtures_dir()
    recorded = recordings_in(fixtures)
    plan = plan_replay(
        fixtures,
        recorded or recordings_for(settings.venues),
        aligned=recorded is None,
        shocks=args.shock,
        refresh_ms=settings.refresh_ms,
        stale_ms=settings.stale_ms,
        usdt_usd=settings.usdt_usd,
        depth_notionals_usd=settings.depth_notionals_usd,
        book_levels=settings.book_levels,
    )
    exchanges = sorted({r.exchange for r in plan.records})
    for shock in args.shock:
        if shock.exchange not in exchanges:
            log.warning("shock_matches_no_venue", exchange=shock.exchange, replayed=exchanges)
    for exchange in exchanges:
        metrics.feed_connected.labels(exchange).set(1)
    for exchange in sorted(plan.book_venues):
        metrics.book(exchange)  # book health series from the start, as a live feed's
    log.info("replay_started", records=len(plan.records), speed=args.speed or "max",
             loop=args.loop, shocks=[str(s) for s in args.shock])
    # Paced, the replay's clock starts now: receive times are then wall-clock times.
    start_ms = None if args.speed is None else time.time_ns() // 1_000_000
    records = iter_replay(plan, loop=args.loop, gap_ms=settings.refresh_ms, start_ms=start_ms,
                          feed_events=True)
    sent = publish_replay(records, publisher, speed=args.speed, stop=stop, metrics=metrics,
                          origin_ms=start_ms)
    for exchange in exchanges:
        metrics.feed_connected.labels(exchange).set(0)
    remaining = publisher.flush(30.0)
    log.info("replay_finished", sent=sent, delivered=publisher.delivered, failed=publisher.failed,
             dropped=publisher.dropped, undelivered=remaining, stopped=stop.is_set())
    return 0 if remaining == 0 and publisher.failed == 0 and publisher.dropped == 0 else 1


def configured_venues(settings: ProducerSettings) -> list[Venue]:
    """The venues of ARB_VENUES with their ARB_<VENUE>_SYMBOLS, checked (ConfigError)."""
    venues = []
    for name in settings.venues:
        venue = get_venue(name, settings.symbol_maps.get(name))
        venue.check_markets(venue.venue_symbols(settings.symbols))
        venues.append(venue)
    return venues


def warn_if_refresh_misses_windows(settings: ProducerSettings) -> bool:
    """A refresh as long as the window leaves a quiet but live venue out of some windows:
    allowed (it is a choice), but said once at start."""
    if settings.refresh_ms < settings.window_ms:
        return False
    log.warning("quote_refresh_not_below_window", refresh_ms=settings.refresh_ms,
                window_ms=settings.window_ms,
                consequence="a quiet but live venue is missing from some windows")
    return True


def build_feeds(
    settings: ProducerSettings, publisher: KafkaPublisher | DiscardSink,
    metrics: ProducerMetrics, tap_for: Callable[[str], FrameTap] | None = None,
    rest_tap_for: Callable[[str], RestTap] | None = None,
) -> list[Feed]:
    """One feed per venue, sharing one table of stablecoin rates; ``tap_for(venue)`` gives a
    feed the tap that sees its frames, ``rest_tap_for(venue)`` the one that sees the REST
    snapshots it fetches (record mode).

    A rate market (USDT-USD ...) is subscribed on every venue that lists it, but only when some
    configured market is quoted in that stablecoin.
    """
    venues = configured_venues(settings)
    needed = {v.market_quote_ccy(s) for v in venues for s in v.venue_symbols(settings.symbols)}
    rate_markets = tuple(m for m, ccy in FX_MARKETS.items() if ccy in needed)
    fx = FxRates({USDT: settings.usdt_usd, USDC: settings.usdc_usd}, settings.fx_max_age_ms)
    for market in rate_markets:
        sources = [v.name for v in venues if market in v.fx_symbols]
        log.info("fx_rate_sources", market=market, live_from=sources,
                 fallback=fx.fallback[FX_MARKETS[market]])
    return [
        Feed(
            venue, settings.symbols, publisher,
            FeedOptions(
                url=settings.ws_urls.get(venue.name),
                rate_markets=rate_markets,
                refresh_ms=settings.refresh_ms,
                stale_ms=settings.stale_ms,
                watchdog_ms=settings.watchdog_ms,
                retry_after_max_s=settings.retry_after_max_s,
                clock_jump_ms=settings.clock_jump_ms,
                rollover_margin_s=settings.rollover_margin_s,
                depth_notionals_usd=settings.depth_notionals_usd,
                book_levels=settings.book_levels,
                rest_url=settings.rest_urls.get(venue.name),
            ),
            fx=fx,
            metrics=metrics,
            tap=None if tap_for is None else tap_for(venue.name),
            rest_tap=None if rest_tap_for is None else rest_tap_for(venue.name),
        )
        for venue in venues
    ]


async def run_live(
    settings: ProducerSettings,
    publisher: KafkaPublisher,
    metrics: ProducerMetrics,
    feeds: list[Feed],
) -> int:
    """Run every configured venue until SIGINT/SIGTERM; ``feeds`` is filled for /healthz."""
    feeds.extend(build_feeds(settings, publisher, metrics))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def serve_callbacks() -> None:  # delivery callbacks run inside poll()
        while True:
            publisher.service()
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(serve_callbacks())
    try:
        await run_feeds(feeds, stop)
    finally:
        poller.cancel()
    remaining = publisher.flush(10.0)
    log.info("producer_stopped", undelivered=remaining)
    return 0


async def run_record(
    args: argparse.Namespace, settings: ProducerSettings, metrics: ProducerMetrics,
    feeds: list[Feed],
) -> int:
    """Read every configured venue like live until SIGINT/SIGTERM, writing each frame to files
    in the fixtures format; nothing goes to Kafka."""
    venues = configured_venues(settings)
    recorder = FrameRecorder(
        args.out, {v.name: v.symbol_map(settings.symbols) for v in venues},
        max_file_bytes=max(1, round(args.max_file_mb * 1024 * 1024)),
    )
    sink = DiscardSink()
    feeds.extend(build_feeds(settings, sink, metrics, tap_for=recorder.tap,
                              rest_tap_for=recorder.rest_tap))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("recording_started", out=str(args.out), venues=[v.name for v in venues],
             max_file_mb=args.max_file_mb)
    try:
        await run_feeds(feeds, stop)
    finally:
        recorder.close()
    log.info("recording_stopped", frames=recorder.frames, records=sink.records,
             files=[str(f) for f in recorder.files])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_dotenv()  # first: LOG_LEVEL and LOG_FORMAT may come from .env
    configure_logging("producer")
    try:
        settings = ProducerSettings.from_env()
        kafka = KafkaSettings.from_env()
        configured_venues(settings)
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    log.info("producer_starting", mode=args.mode, settings=describe(settings),
             kafka=describe(kafka))
    warn_if_refresh_misses_windows(settings)
    metrics = default_metrics()
    feeds: list[Feed] = []
    started = threading.Event()

    def ready() -> bool:
        """Replay: once publishing; live and record: while at least one venue is connected."""
        return any(f.connected for f in feeds) if args.mode != "replay" else started.is_set()

    server = MetricsServer(settings.metrics_port, ready=ready).start()
    try:
        if args.mode == "record":
            return asyncio.run(run_record(args, settings, metrics, feeds))
        try:
            ensure_topics(kafka.bootstrap_servers, [kafka.prices_topic], kafka.partitions)
        except KafkaException as exc:
            log.warning("topic_check_failed", topic=kafka.prices_topic, error=str(exc))
        publisher = KafkaPublisher(
            kafka.bootstrap_servers, kafka.prices_topic, metrics,
            trade_backlog=settings.trade_backlog,
            queue_max_messages=settings.kafka_queue_max_messages,
            block=args.mode == "replay",  # no socket to protect: wait for room, drop nothing
        )
        if args.mode == "replay":
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            started.set()
            return run_replay(args, settings, publisher, metrics, stop)
        return asyncio.run(run_live(settings, publisher, metrics, feeds))
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
