"""All configuration, read from the environment (and an optional ``.env``) and validated at start.

One frozen dataclass per service. Each ``from_env`` names the variable in any error, so a typo
fails at start with a message a user can act on, not later inside a callback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from services.common.exceptions import ConfigError

T = TypeVar("T")
Env = Mapping[str, str]

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")
DEFAULT_VENUES = ("coinbase", "binance")
#: Taker fees of each venue's entry tier, in bps; override with ARB_TAKER_FEE_BPS.
DEFAULT_TAKER_FEE_BPS = {"coinbase": 60.0, "binance": 10.0, "kraken": 40.0, "okx": 10.0}
#: Fee assumed for a venue that ARB_TAKER_FEE_BPS does not name.
FALLBACK_TAKER_FEE_BPS = 10.0
NORMAL_MIN_SPREAD_USD = 50.0
DEMO_MIN_SPREAD_USD = 0.10
SECRET_FIELDS = frozenset({"webhook_url"})
#: Detection modes and their (window_ms, watermark_ms) defaults: the seed used 10 s + 5 s. A
#: window set without a watermark keeps the mode's proportion (arb: a fifth of the window).
MODES = {"arb": (1000, 200), "seed": (10_000, 5000)}
#: What the alerter posts to Discord (ARB_DISCORD_MESSAGES).
DISCORD_MESSAGES = ("episodes", "alerts", "both")
#: p99 feed latency (ms) assumed for a venue that ARB_FEED_LATENCY_MS does not name.
FALLBACK_FEED_LATENCY_MS = 250


def load_dotenv(path: str | Path = ".env", environ: dict[str, str] | None = None) -> None:
    """Fill unset variables from a ``KEY=value`` file; the real environment always wins."""
    environ = os.environ if environ is None else environ
    file = Path(path)
    if not file.is_file():
        return
    for line in file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        environ.setdefault(key, value.strip().strip("'\""))


def _get(env: Env, name: str, default: T, convert: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return convert(raw.strip())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _positive_float(raw: str) -> float:
    value = _finite(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _emit_strategy(raw: str) -> str:
    if raw not in {"on-event", "on-periodic"}:
        raise ValueError("must be on-event or on-periodic")
    return raw


def _csv(raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not items:
        raise ValueError("must list at least one item")
    return items


def _venue_names(raw: str) -> tuple[str, ...]:
    """Venue names as the job uses them: lower case, also column prefixes in the tick path."""
    venues = tuple(v.lower() for v in _csv(raw))
    for venue in venues:
        if not venue.isidentifier() or not venue.isascii():
            raise ValueError(f"{venue!r} is not a venue name (letters, digits, _)")
    return venues


def _fee_map(raw: str) -> dict[str, float]:
    fees = dict(DEFAULT_TAKER_FEE_BPS)
    for part in _csv(raw):
        venue, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not venue=bps")
        bps = _finite(value)
        if bps < 0:
            raise ValueError(f"fee for {venue} must be >= 0")
        fees[venue.strip().lower()] = bps
    return fees


def _latency_map(raw: str) -> tuple[int | None, dict[str, int]]:
    """``250`` (every venue) or ``coinbase=300,binance=120`` or both (``300,binance=120``)."""
    default: int | None = None
    latencies: dict[str, int] = {}
    for part in _csv(raw):
        venue, sep, value = part.rpartition("=")
        ms = int(value)
        if ms < 0:
            raise ValueError(f"latency {part!r} must be >= 0 ms")
        if sep:
            if not venue.strip():
                raise ValueError(f"{part!r} is not venue=ms")
            latencies[venue.strip().lower()] = ms
        else:
            default = ms
    return default, latencies


def _symbols(raw: str) -> tuple[str, ...]:
    symbols = tuple(s.upper() for s in _csv(raw))
    for symbol in symbols:
        base, sep, quote = symbol.partition("-")
        if not sep or not base or quote != "USD":
            raise ValueError(f"{symbol!r} is not a canonical BASE-USD symbol")
    return symbols


def _kafka_servers(raw: str) -> str:
    for server in _csv(raw):
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{server!r} is not host:port")
    return raw


def masked(value: str | None) -> str:
    """Show that a secret is set without showing it."""
    return "<unset>" if not value else "<set, redacted>"


def describe(settings: Any) -> dict[str, Any]:
    """Settings as a dict safe to log: secrets masked."""
    return {
        f.name: masked(value) if f.name in SECRET_FIELDS else value
        for f in fields(settings)
        for value in (getattr(settings, f.name),)
    }


@dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is and what the topics are called."""

    bootstrap_servers: str = "127.0.0.1:9092"  # KAFKA_BOOTSTRAP_SERVERS
    prices_topic: str = "crypto-prices"  # ARB_PRICES_TOPIC
    spreads_topic: str = "arbitrage-spreads"  # ARB_SPREADS_TOPIC
    alerts_topic: str = "arbitrage-alerts"  # ARB_ALERTS_TOPIC
    # ARB_EPISODES_TOPIC: opportunity episodes (consecutive alert windows), opened and closed
    episodes_topic: str = "arbitrage-episodes"
    partitions: int = 3  # ARB_TOPIC_PARTITIONS: partitions per topic (records are keyed by symbol)

    @classmethod
    def from_env(cls, env: Env | None = None) -> KafkaSettings:
        env = os.environ if env is None else env
        return cls(
            bootstrap_servers=_get(
                env, "KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers, _kafka_servers,
            ),
            prices_topic=_get(env, "ARB_PRICES_TOPIC", cls.prices_topic, str),
            spreads_topic=_get(env, "ARB_SPREADS_TOPIC", cls.spreads_topic, str),
            alerts_topic=_get(env, "ARB_ALERTS_TOPIC", cls.alerts_topic, str),
            episodes_topic=_get(env, "ARB_EPISODES_TOPIC", cls.episodes_topic, str),
            partitions=_get(env, "ARB_TOPIC_PARTITIONS", cls.partitions, _positive_int),
        )

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.prices_topic, self.spreads_topic, self.alerts_topic, self.episodes_topic)


@dataclass(frozen=True)
class DetectionSettings:
    """Detection semantics shared by the Flink job and the plain-Python reference."""

    mode: str = "arb"  # ARB_MODE: arb (quotes, 1 s) or seed (trades, 10 s averages, as the seed)
    window_ms: int = 1000  # ARB_WINDOW_MS: tumbling window length
    watermark_ms: int = 200  # ARB_WATERMARK_MS: allowed out-of-orderness
    # ARB_IDLE_TIMEOUT_MS: a partition quiet this long stops holding the watermark back. Live
    # partitions are never quiet that long (refreshes every 500 ms at most); shorter timeouts
    # mark partitions idle while the job catches up on a backlog and drop their windows as late.
    idle_timeout_ms: int = 3000
    # ARB_WATERMARK_EMIT: on-event (a watermark per record) or on-periodic
    watermark_emit: str = "on-event"
    watermark_interval_ms: int = 20  # ARB_WATERMARK_INTERVAL_MS: the period for on-periodic
    min_spread_usd: float = NORMAL_MIN_SPREAD_USD  # ARB_MIN_SPREAD_USD (DEMO_MODE=TRUE: 0.10)
    min_net_bps: float | None = None  # ARB_MIN_NET_BPS: unset = not checked
    max_spread_bps: float = 500.0  # ARB_MAX_SPREAD_BPS: at or above, a bad quote, not an alert
    taker_fee_bps: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TAKER_FEE_BPS))
    demo_mode: bool = False  # DEMO_MODE
    parallelism: int = 1  # ARB_FLINK_PARALLELISM
    checkpoint_interval_ms: int = 10_000  # ARB_CHECKPOINT_INTERVAL_MS (0 = off)
    checkpoint_dir: str = "var/flink-checkpoints"  # ARB_CHECKPOINT_DIR
    restore: bool = True  # ARB_RESTORE_CHECKPOINT: resume from the newest checkpoint there
    # ARB_STARTUP_MODE: latest-offset, earliest-offset or group-offsets
    startup_mode: str = "latest-offset"
    bounded: bool = False  # ARB_BOUNDED: stop at the offsets present at start (tests, replays)
    group_id: str = "arb-detector"  # ARB_FLINK_GROUP_ID
    # ARB_VENUES: the venues the tick path keeps a latest quote of (one set of columns each)
    venues: tuple[str, ...] = DEFAULT_VENUES
    # ARB_STALE_MS: a venue's latest quote pairs on the tick path while its event time is within
    # this many ms of the quote being checked
    stale_ms: int = 2000
    # ARB_EPISODE_GAP_MS: an opportunity (tick path) closes once its pair has not passed the
    # alert rule for longer than this; a pair passing again within it continues the episode
    episode_gap_ms: int = 1000
    # ARB_FEED_LATENCY_MS: assumed p99 feed latency per venue (ms), for the capturable judgement
    feed_latency_ms: dict[str, int] = field(default_factory=dict)
    default_feed_latency_ms: int = FALLBACK_FEED_LATENCY_MS  # ARB_FEED_LATENCY_MS plain number
    # ARB_EXECUTION_MS: time from seeing both quotes to both orders filled (ms)
    execution_ms: int = 300

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

    @classmethod
    def from_env(cls, env: Env | None = None) -> DetectionSettings:
        env = os.environ if env is None else env
        demo = _get(env, "DEMO_MODE", False, _bool)
        mode = _get(env, "ARB_MODE", cls.mode, str).lower()
        if mode not in MODES:
            raise ConfigError(f"ARB_MODE={mode!r} is invalid: use arb or seed")
        window_default, watermark_default = MODES[mode]
        window_ms = detection_window_ms(env)
        default_min = DEMO_MIN_SPREAD_USD if demo else NORMAL_MIN_SPREAD_USD
        latency_default, latencies = _get(
            env, "ARB_FEED_LATENCY_MS", (None, {}), _latency_map,
        )
        startup = _get(env, "ARB_STARTUP_MODE", cls.startup_mode, str)
        if startup not in {"latest-offset", "earliest-offset", "group-offsets"}:
            raise ConfigError(f"ARB_STARTUP_MODE={startup!r} is invalid: use latest-offset, "
                              "earliest-offset or group-offsets")
        return cls(
            mode=mode,
            window_ms=window_ms,
            watermark_ms=_get(env, "ARB_WATERMARK_MS", window_ms * watermark_default
                              // window_default, _non_negative_int),
            idle_timeout_ms=_get(env, "ARB_IDLE_TIMEOUT_MS", cls.idle_timeout_ms, _positive_int),
            watermark_emit=_get(env, "ARB_WATERMARK_EMIT", cls.watermark_emit, _emit_strategy),
            watermark_interval_ms=_get(
                env, "ARB_WATERMARK_INTERVAL_MS", cls.watermark_interval_ms, _positive_int,
            ),
            min_spread_usd=_get(env, "ARB_MIN_SPREAD_USD", default_min, _finite),
            min_net_bps=_get(env, "ARB_MIN_NET_BPS", None, _finite),
            max_spread_bps=_get(env, "ARB_MAX_SPREAD_BPS", cls.max_spread_bps, _positive_float),
            taker_fee_bps=_get(env, "ARB_TAKER_FEE_BPS", dict(DEFAULT_TAKER_FEE_BPS), _fee_map),
            demo_mode=demo,
            parallelism=_get(env, "ARB_FLINK_PARALLELISM", cls.parallelism, _positive_int),
            checkpoint_interval_ms=_get(
                env, "ARB_CHECKPOINT_INTERVAL_MS", cls.checkpoint_interval_ms, _non_negative_int,
            ),
            checkpoint_dir=_get(env, "ARB_CHECKPOINT_DIR", cls.checkpoint_dir, str),
            restore=_get(env, "ARB_RESTORE_CHECKPOINT", cls.restore, _bool),
            startup_mode=startup,
            bounded=_get(env, "ARB_BOUNDED", False, _bool),
            group_id=_get(env, "ARB_FLINK_GROUP_ID", cls.group_id, str),
            venues=_get(env, "ARB_VENUES", cls.venues, _venue_names),
            stale_ms=_get(env, "ARB_STALE_MS", cls.stale_ms, _positive_int),
            episode_gap_ms=_get(env, "ARB_EPISODE_GAP_MS", cls.episode_gap_ms,
                                _non_negative_int),
            feed_latency_ms=latencies,
            default_feed_latency_ms=(
                cls.default_feed_latency_ms if latency_default is None else latency_default
            ),
            execution_ms=_get(env, "ARB_EXECUTION_MS", cls.execution_ms, _non_negative_int),
        )


def _symbol_map(raw: str) -> dict[str, str]:
    """``BTC-USD=BTCUSDC,ETH-USD=ETHUSDC``: canonical symbol -> the venue's own symbol."""
    mapping = {}
    for part in _csv(raw):
        canonical, sep, venue_symbol = part.partition("=")
        if not sep or not venue_symbol.strip():
            raise ValueError(f"{part!r} is not CANONICAL=VENUE_SYMBOL")
        mapping[_symbols(canonical)[0]] = venue_symbol.strip()
    return mapping


def detection_window_ms(env: Env) -> int:
    """ARB_WINDOW_MS as the detector reads it (the mode's default when unset)."""
    mode = str(env.get("ARB_MODE") or "arb").strip().lower()
    return _get(env, "ARB_WINDOW_MS", MODES.get(mode, MODES["arb"])[0], _positive_int)


def default_refresh_ms(env: Env) -> int:
    """Half the detection window, at most 500 ms.

    Every live venue then lands in every window (twice), and no partition is quiet for longer
    than this, which bounds how long a window waits after its end for the record that moves
    the watermark past it: shorter windows get proportionally prompter refreshes.
    """
    return max(1, min(500, detection_window_ms(env) // 2))


@dataclass(frozen=True)
class ProducerSettings:
    """Which venues and symbols to read, how quotes are kept fresh and feeds kept alive."""

    symbols: tuple[str, ...] = DEFAULT_SYMBOLS  # ARB_SYMBOLS: canonical symbols
    venues: tuple[str, ...] = DEFAULT_VENUES  # ARB_VENUES
    ws_urls: dict[str, str] = field(default_factory=dict)  # ARB_<VENUE>_WS_URL overrides
    # ARB_<VENUE>_SYMBOLS: canonical -> venue symbol, added to or replacing the venue's defaults
    symbol_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    # ARB_QUOTE_REFRESH_MS: re-publish an unchanged quote this often (default: see
    # default_refresh_ms)
    refresh_ms: int = 500
    #: ARB_WINDOW_MS, read to check the refresh against it (the detector owns it)
    window_ms: int = 1000
    stale_ms: int = 2000  # ARB_STALE_MS: a venue silent this long stops refreshing
    usdt_usd: float = 1.0  # ARB_USDT_USD: fallback USDT->USD rate
    usdc_usd: float = 1.0  # ARB_USDC_USD: fallback USDC->USD rate
    # ARB_FX_MAX_AGE_MS: a live stablecoin rate older than this gives way to the fallback
    fx_max_age_ms: int = 60_000
    # ARB_WATCHDOG_MS: reconnect a venue that sent nothing usable (heartbeats count) this long
    watchdog_ms: int = 10_000
    # ARB_ROLLOVER_MARGIN_SECONDS: open a replacement connection this long before a venue's
    # connection age limit (Binance: 24 h)
    rollover_margin_s: float = 600.0
    # ARB_PRODUCER_QUEUE_MAX_MESSAGES: librdkafka's local queue (records not yet acknowledged)
    kafka_queue_max_messages: int = 5_000
    # ARB_PRODUCER_TRADE_BACKLOG: trades waiting for room in that queue before the oldest drop
    trade_backlog: int = 10_000
    metrics_port: int = 8001  # ARB_PRODUCER_METRICS_PORT

    @classmethod
    def from_env(cls, env: Env | None = None) -> ProducerSettings:
        env = os.environ if env is None else env
        venues = _get(env, "ARB_VENUES", cls.venues, _venue_names)
        urls = {}
        maps = {}
        for venue in venues:
            name = f"ARB_{venue.upper()}_WS_URL"
            url = env.get(name)
            if url:
                if urlparse(url).scheme not in {"ws", "wss"}:
                    raise ConfigError(f"{name}={url!r} is invalid: must be a ws:// or wss:// URL")
                urls[venue] = url
            mapping = _get(env, f"ARB_{venue.upper()}_SYMBOLS", {}, _symbol_map)
            if mapping:
                maps[venue] = mapping
        return cls(
            symbols=_get(env, "ARB_SYMBOLS", cls.symbols, _symbols),
            venues=venues,
            ws_urls=urls,
            symbol_maps=maps,
            refresh_ms=_get(env, "ARB_QUOTE_REFRESH_MS", default_refresh_ms(env), _positive_int),
            window_ms=detection_window_ms(env),
            stale_ms=_get(env, "ARB_STALE_MS", cls.stale_ms, _positive_int),
            usdt_usd=_get(env, "ARB_USDT_USD", cls.usdt_usd, _positive_float),
            usdc_usd=_get(env, "ARB_USDC_USD", cls.usdc_usd, _positive_float),
            fx_max_age_ms=_get(env, "ARB_FX_MAX_AGE_MS", cls.fx_max_age_ms, _positive_int),
            watchdog_ms=_get(env, "ARB_WATCHDOG_MS", cls.watchdog_ms, _positive_int),
            rollover_margin_s=_get(
                env, "ARB_ROLLOVER_MARGIN_SECONDS", cls.rollover_margin_s, _positive_float,
            ),
            kafka_queue_max_messages=_get(
                env, "ARB_PRODUCER_QUEUE_MAX_MESSAGES", cls.kafka_queue_max_messages,
                _positive_int,
            ),
            trade_backlog=_get(
                env, "ARB_PRODUCER_TRADE_BACKLOG", cls.trade_backlog, _positive_int,
            ),
            metrics_port=_get(
                env, "ARB_PRODUCER_METRICS_PORT", cls.metrics_port, _non_negative_int,
            ),
        )


def _webhook(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        # The message never contains the value: it is a secret.
        raise ValueError("not an http(s) URL")
    return raw


@dataclass(frozen=True)
class AlerterSettings:
    """Where alerts go and where their history is kept."""

    webhook_url: str | None = None  # DISCORD_WEBHOOK_URL (secret; unset = history only)
    history_db: str = "var/alerts.db"  # ARB_HISTORY_DB: SQLite alert history
    group_id: str = "arb-alerter"  # ARB_ALERTER_GROUP_ID
    metrics_port: int = 8002  # ARB_ALERTER_METRICS_PORT
    dashboard_url: str = "http://localhost:8501"  # ARB_DASHBOARD_URL: linked from Discord messages
    http_timeout_s: float = 5.0  # ARB_DISCORD_TIMEOUT_SECONDS
    max_attempts: int = 5  # ARB_DISCORD_MAX_ATTEMPTS per alert before it is recorded as failed
    # ARB_ALERT_COOLDOWN_SECONDS: after a delivered alert, later windows of the same symbol and
    # direction within this many seconds (event time) are recorded as suppressed; 0 = off
    cooldown_s: float = 30.0
    # ARB_DISCORD_MESSAGES: episodes (one message when an opportunity opens, one when it
    # closes), alerts (one per alert window) or both; every alert is stored either way
    discord_messages: str = "episodes"
    # Why DISCORD_WEBHOOK_URL was not usable (malformed): the alerter says so at start and keeps
    # recording history. Never contains the value.
    webhook_problem: str | None = None

    @classmethod
    def from_env(cls, env: Env | None = None) -> AlerterSettings:
        """A malformed webhook URL is not fatal: history must still be recorded, so it becomes
        ``webhook_problem`` (reported at start) instead of a :class:`ConfigError`."""
        env = os.environ if env is None else env
        raw = env.get("DISCORD_WEBHOOK_URL", "").strip()
        problem = None
        if raw:
            try:
                _webhook(raw)
            except ValueError as exc:
                problem = f"DISCORD_WEBHOOK_URL is invalid: {exc} (value redacted)"
                raw = ""
        cooldown_s = _get(env, "ARB_ALERT_COOLDOWN_SECONDS", cls.cooldown_s, _finite)
        if cooldown_s < 0:
            raise ConfigError(f"ARB_ALERT_COOLDOWN_SECONDS={cooldown_s:g} is invalid: must be >= 0")
        messages = _get(env, "ARB_DISCORD_MESSAGES", cls.discord_messages, str).lower()
        if messages not in DISCORD_MESSAGES:
            raise ConfigError(f"ARB_DISCORD_MESSAGES={messages!r} is invalid: use "
                              + ", ".join(DISCORD_MESSAGES))
        return cls(
            webhook_url=raw or None,
            history_db=_get(env, "ARB_HISTORY_DB", cls.history_db, str),
            group_id=_get(env, "ARB_ALERTER_GROUP_ID", cls.group_id, str),
            metrics_port=_get(env, "ARB_ALERTER_METRICS_PORT", cls.metrics_port, _non_negative_int),
            dashboard_url=_get(env, "ARB_DASHBOARD_URL", cls.dashboard_url, str),
            http_timeout_s=_get(
                env, "ARB_DISCORD_TIMEOUT_SECONDS", cls.http_timeout_s, _positive_float,
            ),
            max_attempts=_get(env, "ARB_DISCORD_MAX_ATTEMPTS", cls.max_attempts, _positive_int),
            cooldown_s=cooldown_s,
            discord_messages=messages,
            webhook_problem=problem,
        )

    def __repr__(self) -> str:  # never print the webhook
        return f"AlerterSettings({describe(self)})"

    @property
    def post_alerts(self) -> bool:
        return self.discord_messages in {"alerts", "both"}

    @property
    def post_episodes(self) -> bool:
        return self.discord_messages in {"episodes", "both"}


@dataclass(frozen=True)
class DashboardSettings:
    """The Streamlit view: alert history, live spreads and feed health."""

    history_db: str = "var/alerts.db"  # ARB_HISTORY_DB
    port: int = 8501  # ARB_DASHBOARD_PORT
    refresh_seconds: float = 2.0  # ARB_DASHBOARD_REFRESH_SECONDS
    max_rows: int = 500  # ARB_DASHBOARD_MAX_ROWS
    grafana_url: str = "http://localhost:3000"  # ARB_GRAFANA_URL
    metrics_port: int = 8003  # ARB_DASHBOARD_METRICS_PORT: /metrics of the Streamlit server
    group_id: str = "arb-dashboard"  # ARB_DASHBOARD_GROUP_ID: labels the reader (never commits)
    # ARB_DASHBOARD_CHART_SECONDS: how much spread history the live chart keeps and shows
    chart_seconds: int = 900
    venues: tuple[str, ...] = DEFAULT_VENUES  # ARB_VENUES: venues listed in the feed strip
    stale_ms: int = 2000  # ARB_STALE_MS: a venue silent this long shows as not connected

    @classmethod
    def from_env(cls, env: Env | None = None) -> DashboardSettings:
        env = os.environ if env is None else env
        return cls(
            history_db=_get(env, "ARB_HISTORY_DB", cls.history_db, str),
            port=_get(env, "ARB_DASHBOARD_PORT", cls.port, _positive_int),
            refresh_seconds=_get(
                env, "ARB_DASHBOARD_REFRESH_SECONDS", cls.refresh_seconds, _positive_float,
            ),
            max_rows=_get(env, "ARB_DASHBOARD_MAX_ROWS", cls.max_rows, _positive_int),
            grafana_url=_get(env, "ARB_GRAFANA_URL", cls.grafana_url, str),
            metrics_port=_get(
                env, "ARB_DASHBOARD_METRICS_PORT", cls.metrics_port, _non_negative_int,
            ),
            group_id=_get(env, "ARB_DASHBOARD_GROUP_ID", cls.group_id, str),
            chart_seconds=_get(env, "ARB_DASHBOARD_CHART_SECONDS", cls.chart_seconds,
                               _positive_int),
            venues=_get(env, "ARB_VENUES", cls.venues, _venue_names),
            stale_ms=_get(env, "ARB_STALE_MS", cls.stale_ms, _positive_int),
        )
