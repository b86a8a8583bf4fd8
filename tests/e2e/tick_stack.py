"""The whole stack as a user starts it (``arb start``), fed by mock Coinbase and Binance
exchanges that the caller drives, posting to a Discord stand-in: price shocks in, Discord
messages out, with the time from the opening quote leaving the mock exchange to the opened
message arriving. Used by tests/e2e/test_tick_latency.py and bench/bench_tick_e2e.py.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO, start_env
from tests.support.discord_standin import DiscordStandIn
from tests.support.mock_exchange import MockExchange

#: Quiet book: Coinbase 60,000/60,001, Binance 60,000.5/60,001.5 (no spread either way).
CB_BOOK = (60_000.0, 60_001.0)
BN_BOOK = (60_000.5, 60_001.5)
#: A shock moves one venue's bid and ask this much: $299+ over the other's ask, 50 bps gross.
SHOCK_USD = 300.0
#: Quotes per second each mock venue sends while nothing happens (small moves, no spread).
QUIET_QUOTES_PER_S = 10


@dataclass(frozen=True)
class Shock:
    """One opportunity: ``venue``'s quotes raised by SHOCK_USD for ``duration_s``, so buying
    on the other venue and selling on this one pays."""

    venue: str
    duration_s: float

    @property
    def quiet_book(self) -> tuple[float, float]:
        """The shocked venue's bid and ask when nothing happens."""
        return CB_BOOK if self.venue == "coinbase" else BN_BOOK

    @property
    def direction(self) -> tuple[str, str]:
        """(buy venue, sell venue)."""
        return ("binance" if self.venue == "coinbase" else "coinbase", self.venue)


@dataclass
class ShockResult:
    shock: Shock
    sent_s: float  # monotonic: the opening quote left the mock exchange
    ended_s: float  # monotonic: the quote that ended it left
    opened_s: float | None = None  # monotonic: Discord stand-in got the opened message
    opened_ids: list[str] = field(default_factory=list)
    window_alerts: int = 0  # alert windows of the window path in the shock's span

    @property
    def latency_s(self) -> float | None:
        return None if self.opened_s is None else self.opened_s - self.sent_s


@dataclass
class Run:
    results: list[ShockResult]
    #: opened messages that match no shock (false alerts)
    unmatched_openings: list[str]


def stack_env(tmp_path: Path, exchanges: dict[str, MockExchange], discord: DiscordStandIn,
              ) -> dict[str, str]:
    env = start_env(tmp_path)
    env.update({
        "ARB_VENUES": "coinbase,binance",
        "ARB_SYMBOLS": "BTC-USD,ETH-USD",
        "DISCORD_WEBHOOK_URL": discord.url,
        **{f"ARB_{venue.upper()}_WS_URL": ex.url for venue, ex in exchanges.items()},
    })
    return env


@contextmanager
def running_stack(tmp_path: Path, log: Path) -> Iterator[tuple[dict[str, MockExchange],
                                                               DiscordStandIn]]:
    """``arb start`` (live mode, no Prometheus) on mock exchanges; stopped with Ctrl-C."""
    with (MockExchange("coinbase") as coinbase, MockExchange("binance") as binance,
          DiscordStandIn() as discord):
        exchanges = {"coinbase": coinbase, "binance": binance}
        out = open(log, "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "start", "--no-prometheus"],
            cwd=REPO, env=stack_env(tmp_path, exchanges, discord), stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            for ex in exchanges.values():
                if not ex.wait_connected(120):
                    raise AssertionError(f"producer never connected:\n{log.read_text()[-3000:]}")
            yield exchanges, discord
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()


def _quiet(exchanges: dict[str, MockExchange], symbol: str, tick: int) -> None:
    """One quote per venue, moving by cents: no spread either way."""
    wiggle = (tick % 5) * 0.01
    cb_bid, cb_ask = CB_BOOK
    bn_bid, bn_ask = BN_BOOK
    exchanges["coinbase"].quote(symbol, cb_bid + wiggle, cb_ask + wiggle)
    exchanges["binance"].quote(symbol, bn_bid - wiggle, bn_ask - wiggle)


def _play(exchanges: dict[str, MockExchange], symbol: str, seconds: float,
          shocked: Shock | None = None) -> float:
    """Quiet quotes for ``seconds``; with ``shocked``, its venue raised by SHOCK_USD throughout
    (every quote then shows the spread). Returns when the first quote was sent (monotonic).
    Both symbols are quoted at BTC's level: it is a mock."""
    first = time.monotonic()
    end = first + seconds
    tick = 0
    while True:
        if shocked is None:
            _quiet(exchanges, symbol, tick)
        else:
            bid, ask = shocked.quiet_book
            sent = exchanges[shocked.venue].quote(symbol, bid + SHOCK_USD, ask + SHOCK_USD)
            first = sent if tick == 0 else first
        tick += 1
        time.sleep(max(0.0, min(1 / QUIET_QUOTES_PER_S, end - time.monotonic())))
        if time.monotonic() >= end:
            return first


def warm_up(exchanges: dict[str, MockExchange], discord: DiscordStandIn,
            timeout_s: float = 240) -> None:
    """ETH-USD shocks until one opened message arrives: the whole pipeline is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _play(exchanges, "ETH-USD", 1.0, Shock("binance", 1.0))
        _play(exchanges, "ETH-USD", 2.0)
        if any(_footer(p).endswith("opened") for p in discord.accepted):
            return
    raise AssertionError("no opened message during warm-up: the stack never answered")


def _footer(payload: object) -> str:
    try:
        return payload["embeds"][0]["footer"]["text"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return ""


def run_shocks(exchanges: dict[str, MockExchange], discord: DiscordStandIn, history_db: Path,
               shocks: Sequence[Shock], quiet_s: float = 3.0) -> Run:
    """Play the shocks on BTC-USD, ``quiet_s`` of quiet quotes between them, then match every
    opened message to the shock it came from (its start time lies in the shock)."""
    skip = len(discord.requests)
    _play(exchanges, "BTC-USD", quiet_s)
    results = []
    for shock in shocks:
        sent_s = _play(exchanges, "BTC-USD", shock.duration_s, shock)
        # the quote that ends it
        ended_s = exchanges[shock.venue].quote(
            "BTC-USD", *shock.quiet_book)
        results.append(ShockResult(shock, sent_s, ended_s))
        _play(exchanges, "BTC-USD", quiet_s)
    time.sleep(5)  # the last closing messages
    wall_minus_mono_ms = time.time() * 1000 - time.monotonic() * 1000
    unmatched = []
    for request in discord.requests[skip:]:
        footer = _footer(request.payload)
        episode_id = footer.removeprefix("episode ").removesuffix(" opened")
        if not footer.endswith(" opened") or not episode_id.startswith("BTC-USD|"):
            continue
        start_mono_s = (int(episode_id.rsplit("|", 1)[1]) - wall_minus_mono_ms) / 1000
        match = next((r for r in results if r.sent_s - 0.05 <= start_mono_s <= r.ended_s + 0.05
                      and episode_id.split("|")[1:3] == list(r.shock.direction)), None)
        if match is None:
            unmatched.append(episode_id)
            continue
        match.opened_ids.append(episode_id)
        if match.opened_s is None:
            match.opened_s = request.monotonic_s
    _count_window_alerts(history_db, results, wall_minus_mono_ms)
    return Run(results, unmatched)


def _count_window_alerts(history_db: Path, results: list[ShockResult],
                         wall_minus_mono_ms: float) -> None:
    """Window-path alerts (stored by the alerter) whose window overlaps each shock."""
    with sqlite3.connect(history_db) as conn:
        rows = conn.execute("SELECT buy_exchange, sell_exchange, window_start_ms, window_end_ms "
                            "FROM alerts WHERE symbol = 'BTC-USD'").fetchall()
    for r in results:
        start_ms = r.sent_s * 1000 + wall_minus_mono_ms
        end_ms = r.ended_s * 1000 + wall_minus_mono_ms
        r.window_alerts = sum(1 for buy, sell, ws, we in rows
                              if (buy, sell) == r.shock.direction and ws < end_ms
                              and we > start_ms)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(run: Run) -> str:
    found = [r for r in run.results if r.opened_s is not None]
    latencies = [r.latency_s for r in found if r.latency_s is not None]
    lines = [f"shocks {len(run.results)}: tick path found {len(found)}, window path found "
             f"{sum(1 for r in run.results if r.window_alerts)}; false openings "
             f"{len(run.unmatched_openings)}"]
    if latencies:
        lines.append("opening quote sent -> Discord stand-in got the opened message: "
                     f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f}"
                     f" ms, max {max(latencies) * 1000:.0f} ms (n={len(latencies)})")
    for r in run.results:
        lat = "missed" if r.latency_s is None else f"{r.latency_s * 1000:.0f} ms"
        lines.append(f"  {r.shock.venue:>8} +${SHOCK_USD:.0f} {r.shock.duration_s * 1000:.0f} ms:"
                     f" tick {lat}, window alerts {r.window_alerts}")
    return "\n".join(lines)
