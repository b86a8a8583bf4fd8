"""Discord payload content and the webhook client against a real local stand-in server."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import requests
import structlog

from services.alerter.discord import (
    CLIENT_ERROR,
    COLOUR_PROFITABLE,
    COLOUR_UNPROFITABLE,
    CONNECTION_ERROR,
    INTERRUPTED,
    MAX_CONTENT_CHARS,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    WEBHOOK_UNUSABLE,
    DiscordWebhook,
    build_payload,
    depth_text,
    episode_closed_payload,
    episode_opened_payload,
    redact,
)
from services.common.broker import free_port
from services.common.messages import Episode, Spread, episode_id
from tests.alerter.conftest import fast_webhook
from tests.support.alerts import make_spread
from tests.support.discord_standin import WEBHOOK_PATH, DiscordStandIn, Reply


def fast_client(url: str, **overrides: object) -> DiscordWebhook:
    """The client tests here: one attempt more than the handlers' (a retry of a retry)."""
    return fast_webhook(url, **({"max_attempts": 4, "backoff_base_s": 0.02,
                                 "backoff_max_s": 0.05} | overrides))


# -- payload --------------------------------------------------------------------------------

def fields_of(payload: dict[str, Any]) -> dict[str, str]:
    (embed,) = payload["embeds"]
    return {f["name"]: f["value"] for f in embed["fields"]}


def test_payload_reads_like_an_alert() -> None:
    spread = make_spread(
        symbol="BTC-USD", buy_exchange="coinbase", buy_ask=67_000.0, buy_size=0.4,
        sell_exchange="binance", sell_bid=67_080.5, sell_size=0.25, fees_bps=10.0,
        quote_age_ms=350,
    )

    payload = build_payload(spread, "http://localhost:8501")

    net = f"{spread.net_spread_bps:+.1f} bps"
    profit = f"${spread.est_profit_usd:,.2f}"
    assert payload["content"] == (
        f"**BTC-USD** buy coinbase -> sell binance: net {net}, est. profit {profit}"
    )
    (embed,) = payload["embeds"]
    assert embed["title"] == "BTC-USD: buy coinbase, sell binance"
    assert embed["url"] == "http://localhost:8501"
    assert embed["color"] == COLOUR_PROFITABLE
    assert embed["timestamp"] == "2024-06-01T12:00:01.000+00:00"
    assert embed["footer"] == {"text": f"alert {spread.id}"}
    assert fields_of(payload) == {
        "Buy on coinbase": "ask **$67,000.00**\nsize 0.4 BTC",
        "Sell on binance": "bid **$67,080.50**\nsize 0.25 BTC",
        "Spread": f"$80.50\n{spread.spread_bps:.1f} bps gross",
        "Net after taker fees": f"**{net}**",
        "Size": "0.25 BTC",
        "Est. profit": f"**{profit}**",
        "At depth": "n/a: no book depth size passes",
        "Quote age": "350 ms",
        "Window end": "2024-06-01 12:00:01.000 UTC",
        "Dashboard": "[alert history](http://localhost:8501)",
    }
    assert payload["allowed_mentions"] == {"parse": []}


def with_depth(spread: Spread, notional_usd: float, fees_bps: float = 10.0) -> Spread:
    """The spread as executable at one ladder size, priced at its top of book (a flat book)."""
    size = notional_usd / spread.buy_ask
    profit = (spread.sell_bid - spread.buy_ask) * size - fees_bps / 1e4 * (
        spread.buy_ask + spread.sell_bid) * size
    return replace(spread, executable_usd=notional_usd, executable_size=size,
                   executable_profit_usd=profit)


def test_alert_with_depth_says_how_much_and_what_it_earns() -> None:
    spread = with_depth(make_spread(buy_ask=67_010.5, sell_bid=67_150.0, fees_bps=10.0), 10_000.0)
    assert spread.executable_profit_usd is not None

    payload = build_payload(spread)

    depth = f"up to $10,000 (0.1492 BTC), est. ${spread.executable_profit_usd:,.2f} after fees"
    assert payload["content"] == (
        f"**BTC-USD** buy coinbase -> sell binance: net {spread.net_spread_bps:+.1f} bps, {depth}"
    )
    fields = fields_of(payload)
    assert fields["At depth"] == f"**{depth}**"
    # The top of book stays beside it.
    assert fields["Est. profit"] == f"**${spread.est_profit_usd:,.2f}**"


@pytest.mark.parametrize(("usd", "size", "profit", "text"), [
    (1000.0, 0.014923, 1.234, "up to $1,000 (0.01492 BTC), est. $1.23 after fees"),
    (100_000.0, 1.49231, 123.456, "up to $100,000 (1.492 BTC), est. $123.46 after fees"),
    (2500.5, 0.5, None, "up to $2,500.50 (0.5 BTC)"),
    (1e7, 1492.3, 12_345.0, "up to $10,000,000 (1,492 BTC), est. $12,345.00 after fees"),
    (1000.0, 0.0149, -0.5, "up to $1,000 (0.0149 BTC), est. -$0.50 after fees"),
    (None, None, None, None),
    (1000.0, None, 1.0, None),
])
def test_depth_text_formats_sizes_for_people(
    usd: float | None, size: float | None, profit: float | None, text: str | None,
) -> None:
    assert depth_text(usd, size, profit, "BTC") == text


def make_episode(**overrides: Any) -> Episode:
    start_ms = 1_717_243_201_000
    episode = Episode(
        id=episode_id("ETH-USD", "kraken", "okx", start_ms), symbol="ETH-USD",
        buy_exchange="kraken", sell_exchange="okx", start_ms=start_ms, end_ms=start_ms + 1200,
        duration_ms=1200, quotes=7, peak_net_spread_bps=8.5, mean_net_spread_bps=4.25,
        peak_spread_usd=4.1, peak_est_profit_usd=0.42, required_ms=550, capturable=True,
        is_open=False, newest_recv_ts_ms=start_ms,
    )
    return replace(episode, **overrides)


def test_episode_messages_with_depth() -> None:
    episode = make_episode(executable_usd=10_000.0, executable_size=3.0303,
                           executable_profit_usd=8.5)
    depth = "up to $10,000 (3.03 ETH), est. $8.50 after fees"

    opened = episode_opened_payload(replace(episode, is_open=True))
    closed = episode_closed_payload(episode)

    assert opened["content"].endswith(f"net +8.5 bps, {depth}")
    assert fields_of(opened)["At depth"] == f"**{depth}**"
    assert f"peak profit $0.42, {depth}; capturable" in closed["content"]


def test_episode_messages_without_depth_keep_the_top_of_book() -> None:
    episode = make_episode()

    opened = episode_opened_payload(replace(episode, is_open=True))
    closed = episode_closed_payload(episode)

    assert opened["content"].endswith("net +8.5 bps, est. profit $0.42")
    assert fields_of(opened)["At depth"] == "n/a: no book depth size passes"
    assert "peak profit $0.42; capturable" in closed["content"]
    assert "up to" not in closed["content"]


def test_payload_fits_discord_limits() -> None:
    payload = build_payload(make_spread(symbol="X" * 300 + "-USD"), "http://localhost:8501")

    (embed,) = payload["embeds"]
    assert len(payload["content"]) <= MAX_CONTENT_CHARS
    assert len(embed["title"]) <= 256
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    text = [embed["title"], embed["footer"]["text"]]
    text += [f["name"] + f["value"] for f in embed["fields"]]
    assert sum(len(t) for t in text) <= 6000


def test_payload_is_the_same_for_the_same_alert() -> None:
    # A redelivered alert must look identical: nothing in the payload comes from the clock.
    assert build_payload(make_spread(), "u") == build_payload(make_spread(), "u")


def test_unprofitable_after_fees_shows_amber_and_negative_numbers() -> None:
    payload = build_payload(make_spread(fees_bps=500.0))

    assert payload["embeds"][0]["color"] == COLOUR_UNPROFITABLE
    assert "net -" in payload["content"]
    assert fields_of(payload)["Est. profit"].startswith("**-$")


def test_payload_shows_missing_sizes_and_no_link_without_dashboard() -> None:
    payload = build_payload(make_spread(buy_size=None))

    fields = fields_of(payload)
    assert fields["Buy on coinbase"].endswith("size n/a")
    assert fields["Size"] == "n/a"
    assert fields["Est. profit"] == "**n/a**"
    assert "Dashboard" not in fields
    assert "url" not in payload["embeds"][0]


def test_cheap_coin_prices_keep_their_decimals() -> None:
    spread = make_spread(symbol="DOGE-USD", buy_ask=0.12345, sell_bid=0.12400, buy_size=1000.0,
                         sell_size=2000.0)
    fields = fields_of(build_payload(spread))
    assert fields["Buy on coinbase"] == "ask **$0.1235**\nsize 1,000 DOGE"


def test_markdown_in_names_is_escaped() -> None:
    payload = build_payload(make_spread(buy_exchange="ev*il_venue"))
    assert "ev\\*il\\_venue" in payload["content"]


def test_redact_removes_url_path_and_token() -> None:
    url = "https://discord.com/api/webhooks/42/abcdefghijklmnop"
    text = (f"HTTPSConnectionPool: Max retries exceeded with url: /api/webhooks/42/abcdefghijklmnop"
            f" ({url}) token=abcdefghijklmnop")
    cleaned = redact(text, url)
    assert "abcdefghijklmnop" not in cleaned
    assert "/api/webhooks/42" not in cleaned


# -- client against the stand-in -------------------------------------------------------------

def test_success_posts_the_payload_once(discord: DiscordStandIn) -> None:
    payload = build_payload(make_spread())

    result = fast_client(discord.url).send(payload)

    assert (result.ok, result.reason, result.attempts, result.status) == (True, OK, 1, 204)
    assert result.accepted_ts_ms is not None
    assert discord.received == [payload]
    assert discord.requests[0].path == WEBHOOK_PATH


@pytest.mark.parametrize(("in_header", "in_body"), [(True, True), (True, False), (False, True)])
def test_429_waits_retry_after_then_succeeds(
    discord: DiscordStandIn, in_header: bool, in_body: bool,
) -> None:
    discord.script(Reply.rate_limited(0.3, in_header=in_header, in_body=in_body))

    result = fast_client(discord.url).send({"content": "x"})

    assert result.ok and result.attempts == 2
    assert discord.statuses == [429, 204]
    first, second = discord.requests
    # The client waited what Discord asked, not its own (much shorter) backoff.
    assert second.monotonic_s - first.monotonic_s >= 0.3


def test_429_asking_too_long_gives_up(discord: DiscordStandIn) -> None:
    discord.script(Reply.rate_limited(120))

    result = fast_client(discord.url, max_retry_after_s=5).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts) == (False, RATE_LIMITED, 1)
    assert len(discord.received) == 1


def test_500_is_retried_then_succeeds(discord: DiscordStandIn) -> None:
    discord.script(Reply(500), Reply(502, body={"message": "bad gateway"}))

    result = fast_client(discord.url).send({"content": "x"})

    assert result.ok and result.attempts == 3
    assert discord.statuses == [500, 502, 204]


def test_5xx_until_attempts_run_out_fails(discord: DiscordStandIn) -> None:
    discord.set_default(Reply(503))

    result = fast_client(discord.url, max_attempts=3).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts, result.status) == (
        False, SERVER_ERROR, 3, 503,
    )
    assert len(discord.received) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_other_4xx_is_not_retried(discord: DiscordStandIn, status: int) -> None:
    discord.script(Reply(status, body={"message": "Unknown Webhook", "code": 10015}))

    result = fast_client(discord.url).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts, result.status) == (
        False, CLIENT_ERROR, 1, status,
    )
    assert "Unknown Webhook" in result.detail
    assert len(discord.received) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_webhook_is_not_posted_to_again(discord: DiscordStandIn, status: int) -> None:
    discord.set_default(Reply(status, body={"message": "Unknown Webhook", "code": 10015}))
    client = fast_client(discord.url)

    first = client.send({"content": "1"})
    later = [client.send({"content": str(i)}) for i in range(5)]

    assert first.reason == CLIENT_ERROR
    assert {(r.ok, r.reason, r.attempts) for r in later} == {(False, WEBHOOK_UNUSABLE, 0)}
    assert f"HTTP {status}" in later[0].detail
    assert "stand-in-secret-token" not in later[0].detail
    assert len(discord.received) == 1


def test_a_bad_message_does_not_stop_later_ones(discord: DiscordStandIn) -> None:
    discord.script(Reply(400, body={"message": "Invalid Form Body"}))
    client = fast_client(discord.url)

    assert client.send({"content": "bad"}).reason == CLIENT_ERROR
    assert client.send({"content": "good"}).ok
    assert discord.statuses == [400, 204]


def test_timeout_is_retried(discord: DiscordStandIn) -> None:
    discord.script(Reply.slow(1.0))

    result = fast_client(discord.url, timeout_s=0.2).send({"content": "x"})

    assert result.ok and result.attempts == 2
    assert len(discord.received) == 2
    assert result.uncertain  # the slow 204 was posted too: a success, but maybe a double


def test_timeouts_until_attempts_run_out_fail(discord: DiscordStandIn) -> None:
    discord.set_default(Reply.slow(0.5))

    result = fast_client(discord.url, timeout_s=0.1, max_attempts=2).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts) == (False, TIMEOUT, 2)


def test_connection_refused_is_retried_and_never_leaks_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/webhooks/1/very-secret-token-value"

    with structlog.testing.capture_logs() as logs:
        result = fast_client(url, max_attempts=2).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts) == (False, CONNECTION_ERROR, 2)
    assert "very-secret-token-value" not in repr(result)
    assert "very-secret-token-value" not in repr(logs)
    assert "very-secret" not in repr(fast_client(url))


def test_error_body_echoing_the_url_is_redacted(discord: DiscordStandIn) -> None:
    discord.script(Reply(400, body={"message": f"bad request to {discord.url}"}))

    result = fast_client(discord.url).send({"content": "x"})

    assert "stand-in-secret-token" not in result.detail
    assert "<webhook>" in result.detail


def test_empty_bucket_pauses_the_next_message(discord: DiscordStandIn) -> None:
    discord.script(Reply(204, headers={"X-RateLimit-Remaining": "0",
                                       "X-RateLimit-Reset-After": "0.3"}))
    client = fast_client(discord.url)

    assert client.send({"content": "1"}).ok
    assert client.send({"content": "2"}).ok

    first, second = discord.requests
    assert second.monotonic_s - first.monotonic_s >= 0.3


def test_shutdown_during_retry_after_interrupts(discord: DiscordStandIn) -> None:
    discord.script(Reply.rate_limited(30))
    started = time.monotonic()

    result = fast_client(discord.url, sleep=lambda seconds: False).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts) == (False, INTERRUPTED, 1)
    assert time.monotonic() - started < 5


def test_client_uses_a_real_session() -> None:
    client = DiscordWebhook("http://127.0.0.1:1/x")
    assert isinstance(client._session, requests.Session)
    client.close()


# -- rate limits without a wait, the global limit, and requests without an answer -------------

def test_429_without_any_retry_value_waits_the_stated_fallback(discord: DiscordStandIn) -> None:
    discord.script(Reply.rate_limited_without_wait(), Reply.rate_limited_without_wait())
    client = fast_client(discord.url, rate_limit_fallback_s=0.2, backoff_max_s=1.0)

    result = client.send({"content": "x"})

    assert (result.ok, result.attempts) == (True, 3)
    first, second, third = (r.monotonic_s for r in discord.requests)
    # 0.2 s, then doubled: no jitter, so the wait is at least what the docstring states (the
    # upper bounds only rule out some other, longer wait; a loaded machine adds to both).
    assert 0.2 <= second - first < 1.0
    assert 0.4 <= third - second < 1.2


@pytest.mark.parametrize(("in_header", "in_body"), [(True, True), (True, False), (False, True)])
def test_global_rate_limit_holds_back_the_next_message_too(
    discord: DiscordStandIn, in_header: bool, in_body: bool,
) -> None:
    discord.script(Reply.global_rate_limited(0.4, in_header=in_header, in_body=in_body))
    client = fast_client(discord.url, max_attempts=1)  # the refused message is given up

    assert client.send({"content": "1"}).reason == RATE_LIMITED
    assert client.send({"content": "2"}).ok

    refused, next_message = discord.requests
    assert next_message.monotonic_s - refused.monotonic_s >= 0.4


def test_route_rate_limit_does_not_hold_back_the_next_message(discord: DiscordStandIn) -> None:
    discord.script(Reply.rate_limited(1.5))
    client = fast_client(discord.url, max_attempts=1)

    assert client.send({"content": "1"}).reason == RATE_LIMITED
    assert client.send({"content": "2"}).ok

    refused, next_message = discord.requests
    assert next_message.monotonic_s - refused.monotonic_s < 1.0  # did not sit out the 1.5 s


def test_a_timeout_is_uncertain_and_retried_at_least_once(discord: DiscordStandIn) -> None:
    discord.script(Reply.slow(0.6))  # posted, but the answer comes after the client left

    result = fast_client(discord.url, timeout_s=0.3).send({"content": "x"})

    assert (result.ok, result.uncertain) == (True, True)
    # What real Discord would show: twice (more if a loaded machine timed the retry out too).
    assert len(discord.accepted) == result.attempts >= 2


def test_a_timeout_is_not_retried_at_most_once(discord: DiscordStandIn) -> None:
    discord.script(Reply.slow(0.6))

    result = fast_client(discord.url, timeout_s=0.2, retry_uncertain=False).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts, result.uncertain) == (
        False, TIMEOUT, 1, True)
    time.sleep(0.3)
    assert len(discord.received) == 1
    assert "may have been posted" in result.detail


def test_a_connection_dropped_after_sending_is_uncertain(discord: DiscordStandIn) -> None:
    discord.script(Reply.dropped(posted=True))

    result = fast_client(discord.url, retry_uncertain=False).send({"content": "x"})

    assert (result.ok, result.reason, result.uncertain) == (False, CONNECTION_ERROR, True)
    assert len(discord.accepted) == 1


def test_a_refused_connection_is_certain_not_posted() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/webhooks/1/token"

    result = fast_client(url, max_attempts=2, retry_uncertain=False).send({"content": "x"})

    assert (result.reason, result.attempts, result.uncertain) == (CONNECTION_ERROR, 2, False)


def test_certain_failures_are_not_uncertain(discord: DiscordStandIn) -> None:
    discord.script(Reply(500), Reply.rate_limited(0.01))

    result = fast_client(discord.url).send({"content": "x"})

    assert (result.ok, result.attempts, result.uncertain) == (True, 3, False)


def test_before_request_runs_once_and_only_when_a_request_leaves(
    discord: DiscordStandIn,
) -> None:
    discord.script(Reply(500), Reply(204))
    calls: list[int] = []
    client = fast_client(discord.url)

    assert client.send({"content": "x"}, before_request=lambda: calls.append(
        len(discord.requests))).ok
    assert calls == [0]  # before the first request, not again for the retry

    discord.script(Reply(404))
    client.send({"content": "y"})
    assert client.send({"content": "z"}, before_request=lambda: calls.append(-1)).reason == (
        WEBHOOK_UNUSABLE)
    assert calls == [0]
