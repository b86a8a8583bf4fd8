"""Discord payload content and the webhook client against a real local stand-in server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
import structlog

from services.alerter.discord import (
    CLIENT_ERROR,
    CONNECTION_ERROR,
    INTERRUPTED,
    MAX_CONTENT_CHARS,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    DiscordWebhook,
    build_payload,
    redact,
)
from services.common.broker import free_port
from tests.support.alerts import make_spread
from tests.support.discord_standin import WEBHOOK_PATH, DiscordStandIn, Reply


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


def fast_client(url: str, **overrides: object) -> DiscordWebhook:
    """Real HTTP, short waits: backoff in tens of milliseconds."""
    options: dict[str, object] = {
        "timeout_s": 2.0, "max_attempts": 4, "backoff_base_s": 0.02, "backoff_max_s": 0.05,
    }
    options.update(overrides)
    return DiscordWebhook(url, **options)  # type: ignore[arg-type]


# -- payload --------------------------------------------------------------------------------

def test_payload_reads_like_an_alert() -> None:
    spread = make_spread(
        symbol="BTC-USD", buy_exchange="coinbase", buy_ask=67_000.0, buy_size=0.4,
        sell_exchange="binance", sell_bid=67_080.5, sell_size=0.25, fees_bps=10.0,
        quote_age_ms=350,
    )

    payload = build_payload(spread, "http://localhost:8501")
    text = payload["content"]

    assert "**Arbitrage BTC-USD**" in text
    assert "buy on **coinbase**" in text and "sell on **binance**" in text
    assert "ask $67,000.00 (size 0.4 BTC)" in text
    assert "bid $67,080.50 (size 0.25 BTC)" in text
    assert f"Spread $80.50 ({spread.spread_bps:.1f} bps)" in text
    assert f"net of taker fees {spread.net_spread_bps:.1f} bps" in text
    assert "Max size 0.25 BTC" in text
    assert f"est. profit ${spread.est_profit_usd:,.2f}" in text
    assert "Quote age 350 ms" in text
    assert "window ending 2024-06-01 12:00:01.000 UTC" in text
    assert "<http://localhost:8501>" in text
    assert payload["allowed_mentions"] == {"parse": []}
    assert len(text) <= MAX_CONTENT_CHARS


def test_payload_shows_negative_profit_and_missing_sizes() -> None:
    spread = make_spread(buy_size=None, fees_bps=500.0)

    text = build_payload(spread)["content"]

    assert "size n/a" in text
    assert "est. profit n/a" in text
    assert "History:" not in text


def test_payload_negative_money_has_sign_before_dollar() -> None:
    text = build_payload(make_spread(fees_bps=500.0))["content"]
    assert "est. profit -$" in text


def test_cheap_coin_prices_keep_their_decimals() -> None:
    spread = make_spread(symbol="DOGE-USD", buy_ask=0.12345, sell_bid=0.12400, buy_size=1000.0,
                         sell_size=2000.0)
    text = build_payload(spread)["content"]
    assert "ask $0.1235" in text and "size 1,000 DOGE" in text


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


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_4xx_is_not_retried(discord: DiscordStandIn, status: int) -> None:
    discord.script(Reply(status, body={"message": "Unknown Webhook", "code": 10015}))

    result = fast_client(discord.url).send({"content": "x"})

    assert (result.ok, result.reason, result.attempts, result.status) == (
        False, CLIENT_ERROR, 1, status,
    )
    assert "Unknown Webhook" in result.detail
    assert len(discord.received) == 1


def test_timeout_is_retried(discord: DiscordStandIn) -> None:
    discord.script(Reply.slow(1.0))

    result = fast_client(discord.url, timeout_s=0.2).send({"content": "x"})

    assert result.ok and result.attempts == 2
    assert len(discord.received) == 2


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
