"""Discord webhook: a pure payload builder and a small client that respects Discord's limits.

Discord answers 204 (or 200 with ``?wait=true``) when it accepted a message, 429 with a
``Retry-After`` header and a JSON ``retry_after`` (seconds) when rate limited, and sends
``X-RateLimit-Remaining`` / ``X-RateLimit-Reset-After`` so a client can pause before the next
message instead of being refused. A 429 that carries no retry value at all waits
:data:`RATE_LIMIT_FALLBACK_S` (1 s), doubling on each repeat up to ``backoff_max_s``. A 429 of
Discord's *global* limit (JSON ``"global": true``, or ``X-RateLimit-Global: true``, or
``X-RateLimit-Scope: global``) holds back every message of this client for the time given, not
only the one refused. 5xx are transient and retried with capped backoff; any other 4xx (bad
payload, deleted webhook) will not get better and is not retried.

No answer is not a refusal: a request that timed out waiting for the answer (or whose
connection dropped after it was sent) may have been posted. Such a result is ``uncertain``;
``retry_uncertain`` (the at-least-once mode) retries it anyway, accepting a possible double,
and without it (at-most-once) the message is given up at once. Only a connect timeout or a
refused connection is known not to have reached Discord.
401, 403 and 404 say the webhook itself is gone or its token wrong: after one of those the
client stops posting (every later message fails at once as ``webhook_unusable``) instead of
sending each alert to a dead URL; Discord also restricts clients that keep making such requests.

The webhook URL contains its token: it is a secret and never appears in logs or results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from urllib3.exceptions import MaxRetryError

from services.common.backoff import Backoff
from services.common.clock import now_ts_ms
from services.common.messages import Episode, Spread

log = structlog.get_logger(__name__)

CHANNEL = "discord"
#: Discord rejects message content longer than this.
MAX_CONTENT_CHARS = 2000
USERNAME = "Arbitrage alerter"

# Result reasons; also the ``reason`` label of arb_alerts_failed_total (keep this set small).
OK = "ok"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
CLIENT_ERROR = "client_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
INTERRUPTED = "interrupted"
WEBHOOK_UNUSABLE = "webhook_unusable"
#: Answers meaning the webhook (not the message) is bad: unknown webhook, bad token, forbidden.
UNUSABLE_STATUSES = frozenset({401, 403, 404})
#: First wait after a 429 that names no wait (no Retry-After, no ``retry_after``); doubles on
#: each repeat up to ``backoff_max_s``. Discord always sends one; a proxy in between may not.
RATE_LIMIT_FALLBACK_S = 1.0

#: Sleeps for ``seconds`` unless shutting down; returns False when interrupted.
Sleep = Callable[[float], bool]


def _default_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def _money(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def _price_digits(price: float) -> int:
    """Enough decimals to show a cheap coin's price, two for BTC-sized ones."""
    return 2 if price >= 10 else 4 if price >= 0.1 else 6


def _size(value: float | None, base: str) -> str:
    return "n/a" if value is None else f"{value:,.6g} {base}"


def _notional(value_usd: float) -> str:
    """A ladder size in dollars: whole dollars for round sizes ($10,000), cents otherwise."""
    return _money(value_usd, 0 if value_usd == round(value_usd) else 2)


def _base_amount(value: float) -> str:
    """A base-asset amount to four significant digits (0.1482, 1.482), whole above 1,000."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def depth_text(executable_usd: float | None, executable_size: float | None,
               executable_profit_usd: float | None, base: str) -> str | None:
    """What the books say can really be done: "up to $10,000 (0.1482 BTC), est. $12.34 after
    fees"; None when no ladder size passes or a venue sends no depth (the top-of-book numbers
    are then all there is)."""
    if executable_usd is None or executable_size is None:
        return None
    text = f"up to {_notional(executable_usd)} ({_base_amount(executable_size)} {_plain(base)})"
    if executable_profit_usd is not None:
        text += f", est. {_money(executable_profit_usd)} after fees"
    return text


#: The embed's depth field when no ladder size passes (or a venue sends no book).
NO_DEPTH = "n/a: no book depth size passes"


def _base(symbol: str) -> str:
    return symbol.split("-", 1)[0]


def _utc(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts_ms % 1000:03d} UTC"


#: Embed colours: green when the spread pays after fees, amber when it does not.
COLOUR_PROFITABLE = 0x2ECC71
COLOUR_UNPROFITABLE = 0xE67E22
_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "*_~`|>[]()"})


def _plain(text: str) -> str:
    """Escape Discord markdown in a name taken from data (symbols, venues)."""
    return text.translate(_MARKDOWN)


def _bps(value: float) -> str:
    return f"{value:+.1f} bps"


def headline(spread: Spread) -> str:
    """One line for the message text, which is also what a phone notification shows."""
    depth = depth_text(spread.executable_usd, spread.executable_size,
                       spread.executable_profit_usd, _base(spread.symbol))
    worth = depth or f"est. profit {_money(spread.est_profit_usd)}"
    return (
        f"**{_plain(spread.symbol)}** buy {_plain(spread.buy_exchange)} -> sell "
        f"{_plain(spread.sell_exchange)}: net {_bps(spread.net_spread_bps)}, {worth}"
    )


def _iso(ts_ms: int) -> str:
    """ISO 8601 for the embed timestamp; Discord shows it in each reader's own time zone."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def build_embed(spread: Spread, dashboard_url: str | None = None) -> dict[str, Any]:
    """The alert as one Discord embed: where to buy and sell first, then what it is worth.

    Only numbers from the alert record (no clock read here), so the same alert always gives the
    same embed: tests compare payloads, and a redelivered alert would look identical.
    """
    base = _base(spread.symbol)
    digits = _price_digits(spread.buy_ask)
    depth = depth_text(spread.executable_usd, spread.executable_size,
                       spread.executable_profit_usd, base)
    fields = [
        {"name": f"Buy on {_plain(spread.buy_exchange)}",
         "value": f"ask **{_money(spread.buy_ask, digits)}**\nsize {_size(spread.buy_size, base)}",
         "inline": True},
        {"name": f"Sell on {_plain(spread.sell_exchange)}",
         "value": f"bid **{_money(spread.sell_bid, digits)}**\n"
                  f"size {_size(spread.sell_size, base)}",
         "inline": True},
        {"name": "Spread",
         "value": f"{_money(spread.spread_usd, digits)}\n{spread.spread_bps:.1f} bps gross",
         "inline": True},
        {"name": "Net after taker fees", "value": f"**{_bps(spread.net_spread_bps)}**",
         "inline": True},
        {"name": "Size", "value": _size(spread.max_size, base), "inline": True},
        {"name": "Est. profit", "value": f"**{_money(spread.est_profit_usd)}**", "inline": True},
        {"name": "At depth", "value": f"**{depth}**" if depth else NO_DEPTH, "inline": True},
        {"name": "Quote age", "value": f"{spread.quote_age_ms:,} ms", "inline": True},
        {"name": "Window end", "value": _utc(spread.window_end_ms), "inline": True},
    ]
    if dashboard_url:
        fields.append({"name": "Dashboard", "value": f"[alert history]({dashboard_url})",
                       "inline": True})
    embed: dict[str, Any] = {
        "title": f"{spread.symbol}: buy {spread.buy_exchange}, sell {spread.sell_exchange}"[:256],
        "color": COLOUR_PROFITABLE if spread.net_spread_bps > 0 else COLOUR_UNPROFITABLE,
        "fields": fields,
        "footer": {"text": f"alert {spread.id}"},
        "timestamp": _iso(spread.window_end_ms),
    }
    if dashboard_url:
        embed["url"] = dashboard_url
    return embed


def build_payload(spread: Spread, dashboard_url: str | None = None) -> dict[str, Any]:
    """The webhook JSON body: a one-line text and the embed; mentions are disabled so a symbol
    can never ping anyone."""
    return {
        "username": USERNAME,
        "content": headline(spread)[:MAX_CONTENT_CHARS],
        "embeds": [build_embed(spread, dashboard_url)],
        "allowed_mentions": {"parse": []},
    }


def _duration(duration_ms: int) -> str:
    """Milliseconds below 10 s, where they matter to a trader; seconds above."""
    return (f"{duration_ms:,} ms" if duration_ms < 10_000
            else f"{duration_ms / 1000:,.1f} s")


def _capture(episode: Episode) -> str:
    verdict = "capturable" if episode.capturable else "not capturable"
    return (f"{verdict}: lasted {episode.duration_ms:,} ms, needs "
            f"{episode.required_ms:,} ms (slower venue's p99 feed latency + execution)")


def _episode_depth(episode: Episode) -> str | None:
    return depth_text(episode.executable_usd, episode.executable_size,
                      episode.executable_profit_usd, _base(episode.symbol))


def episode_opened_payload(episode: Episode, dashboard_url: str | None = None,
                           ) -> dict[str, Any]:
    """The one message when an episode opens: where to buy and sell, what the opening quote
    shows, and how long the spread must last to be captured."""
    depth = _episode_depth(episode)
    worth = depth or f"est. profit {_money(episode.peak_est_profit_usd)}"
    content = (
        f"**{_plain(episode.symbol)}** opportunity opened: buy {_plain(episode.buy_exchange)} "
        f"-> sell {_plain(episode.sell_exchange)}, net {_bps(episode.peak_net_spread_bps)}, "
        f"{worth}"
    )
    fields = [
        {"name": "Buy on", "value": _plain(episode.buy_exchange), "inline": True},
        {"name": "Sell on", "value": _plain(episode.sell_exchange), "inline": True},
        {"name": "Spread", "value": _money(episode.peak_spread_usd), "inline": True},
        {"name": "Net after taker fees", "value": f"**{_bps(episode.peak_net_spread_bps)}**",
         "inline": True},
        {"name": "Est. profit", "value": f"**{_money(episode.peak_est_profit_usd)}**",
         "inline": True},
        {"name": "At depth", "value": f"**{depth}**" if depth else NO_DEPTH, "inline": True},
        {"name": "To capture", "value": f"must last {episode.required_ms:,} ms",
         "inline": True},
        {"name": "Opened at", "value": _utc(episode.start_ms), "inline": True},
    ]
    if dashboard_url:
        fields.append({"name": "Dashboard", "value": f"[history]({dashboard_url})",
                       "inline": True})
    embed: dict[str, Any] = {
        "title": (f"{episode.symbol}: buy {episode.buy_exchange}, sell "
                  f"{episode.sell_exchange} (opened)")[:256],
        "color": (COLOUR_PROFITABLE if episode.peak_net_spread_bps > 0
                  else COLOUR_UNPROFITABLE),
        "fields": fields,
        "footer": {"text": f"episode {episode.id} opened"},
        "timestamp": _iso(episode.start_ms),
    }
    return {"username": USERNAME, "content": content[:MAX_CONTENT_CHARS], "embeds": [embed],
            "allowed_mentions": {"parse": []}}


def episode_closed_payload(episode: Episode, *, opened_posted: bool = True) -> dict[str, Any]:
    """The short update when an episode closes: how long it lasted, its peak and mean, and
    whether it could have been captured. When its opening was never posted (the alerter first
    saw it closed), the venues are named in full."""
    head = "closed" if opened_posted else "seen closed"
    content = (
        f"**{_plain(episode.symbol)}** {_plain(episode.buy_exchange)} -> "
        f"{_plain(episode.sell_exchange)} {head}: lasted {_duration(episode.duration_ms)} "
        f"({episode.quotes:,} passing quote{'s' if episode.quotes != 1 else ''}), peak "
        f"{_bps(episode.peak_net_spread_bps)}, mean {_bps(episode.mean_net_spread_bps)}, "
        f"peak profit {_money(episode.peak_est_profit_usd)}"
        + (f", {depth}" if (depth := _episode_depth(episode)) else "")
        + f"; {_capture(episode)}"
    )
    embed: dict[str, Any] = {
        "title": (f"{episode.symbol}: buy {episode.buy_exchange}, sell "
                  f"{episode.sell_exchange} ({head})")[:256],
        "color": COLOUR_PROFITABLE if episode.capturable else COLOUR_UNPROFITABLE,
        "description": (f"{_utc(episode.start_ms)} to {_utc(episode.end_ms)}\n"
                        f"{'capturable' if episode.capturable else 'not capturable'}"),
        "footer": {"text": f"episode {episode.id} closed"},
        "timestamp": _iso(episode.end_ms),
    }
    return {"username": USERNAME, "content": content[:MAX_CONTENT_CHARS], "embeds": [embed],
            "allowed_mentions": {"parse": []}}


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of one message: ``reason`` is OK or a failure label; ``detail`` is secret-free."""

    ok: bool
    reason: str
    attempts: int
    status: int | None = None
    detail: str = ""
    accepted_ts_ms: int | None = None
    #: Some attempt was sent and got no answer (timeout, connection dropped): Discord may have
    #: posted it, so an ``ok`` result may be a double and a failed one may have arrived.
    uncertain: bool = False


def redact(text: str, secret: str | None) -> str:
    """Remove the webhook URL, its path and its token from any text (exception messages from
    requests/urllib3 quote the URL path)."""
    if not secret:
        return text
    pieces = {secret}
    path = secret.split("://", 1)[-1].partition("/")[2]
    if path:
        pieces.add("/" + path)
        token = path.rstrip("/").rsplit("/", 1)[-1]
        if len(token) >= 8:
            pieces.add(token)
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "<webhook>")
    return text


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _json_body(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def retry_after_seconds(response: requests.Response) -> float | None:
    """Discord's wait: JSON ``retry_after`` (more precise), else the Retry-After header."""
    body = _json_body(response)
    if body is not None and (seconds := _float(body.get("retry_after"))) is not None:
        return seconds
    return _float(response.headers.get("Retry-After"))


def is_global_limit(response: requests.Response) -> bool:
    """A 429 of Discord's global rate limit (every request of this client), not the route's."""
    body = _json_body(response)
    headers = response.headers
    return ((body is not None and body.get("global") is True)
            or headers.get("X-RateLimit-Global", "").lower() == "true"
            or headers.get("X-RateLimit-Scope", "").lower() == "global")


def _sent_without_answer(exc: requests.RequestException) -> bool:
    """True when the request may have reached Discord: a read timeout, or a connection lost
    after it was sent. A connect timeout or a refused connection never sent anything."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.Timeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        return not isinstance(cause, MaxRetryError)  # MaxRetryError: connecting failed
    return False


class DiscordWebhook:
    """Posts payloads to one webhook, at most ``max_attempts`` HTTP attempts per message.

    ``sleep`` is injected so a shutdown can cut a long Retry-After short (it returns False);
    the message is then reported ``interrupted`` and the caller must not commit it.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        rate_limit_fallback_s: float = RATE_LIMIT_FALLBACK_S,
        retry_uncertain: bool = True,
        sleep: Sleep = _default_sleep,
        session: requests.Session | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._backoff = Backoff(initial_s=backoff_base_s, max_s=backoff_max_s, jitter=0.5)
        self.max_retry_after_s = max_retry_after_s
        self._rate_limit_backoff = Backoff(initial_s=rate_limit_fallback_s,
                                           max_s=max(backoff_max_s, rate_limit_fallback_s),
                                           jitter=0.0)
        #: False (at-most-once): a request that got no answer is not sent again.
        self.retry_uncertain = retry_uncertain
        self._sleep = sleep
        self._session = session or requests.Session()
        self._not_before_monotonic_s = 0.0
        #: Set once Discord said the webhook itself is unusable; secret-free.
        self.unusable: str | None = None

    def __repr__(self) -> str:
        return f"DiscordWebhook(url=<redacted>, timeout_s={self.timeout_s})"

    def close(self) -> None:
        self._session.close()

    def _backoff_s(self, retry: int) -> float:
        """The wait before ``retry`` (counting from 1): half to all of a doubling ceiling."""
        return self._backoff.delay_s(retry - 1)

    def _wait(self, seconds: float) -> bool:
        return seconds <= 0 or self._sleep(seconds)

    def _note_bucket(self, response: requests.Response) -> None:
        """Pause before the next message when Discord says the bucket is empty."""
        remaining = _float(response.headers.get("X-RateLimit-Remaining"))
        reset_after = _float(response.headers.get("X-RateLimit-Reset-After"))
        if remaining == 0 and reset_after is not None:
            self._not_before_monotonic_s = time.monotonic() + min(
                reset_after, self.max_retry_after_s,
            )

    def _rate_limited_wait_s(self, response: requests.Response, attempt: int,
                             ) -> tuple[float, float | None]:
        """(wait before the retry, the wait Discord named or None); a global limit also holds
        back every later message of this client."""
        named_s = retry_after_seconds(response)
        wait_s = self._rate_limit_backoff.delay_s(attempt - 1) if named_s is None else named_s
        if is_global_limit(response):
            until = time.monotonic() + min(wait_s, self.max_retry_after_s)
            self._not_before_monotonic_s = max(self._not_before_monotonic_s, until)
            log.warning("discord_global_rate_limit", retry_after_s=named_s,
                        wait_s=round(wait_s, 3))
        return wait_s, named_s

    def send(self, payload: dict[str, Any],
             before_request: Callable[[], None] | None = None) -> DeliveryResult:
        """Post one message, retrying what is worth retrying; never raises for HTTP problems.

        ``before_request`` runs once, just before the first HTTP request leaves (the caller
        marks the message "sending" there); not at all when no request is made."""
        if self.unusable is not None:
            return DeliveryResult(False, WEBHOOK_UNUSABLE, 0, None, self.unusable)
        attempts = 0
        uncertain = False
        reason, status, detail = SERVER_ERROR, None, ""
        while attempts < self.max_attempts:
            if not self._wait(self._not_before_monotonic_s - time.monotonic()):
                return DeliveryResult(False, INTERRUPTED, attempts, status, detail,
                                      uncertain=uncertain)
            if attempts == 0 and before_request is not None:
                before_request()
            attempts += 1
            wait_s: float | None = None
            try:
                response = self._session.post(self._url, json=payload, timeout=self.timeout_s)
            except requests.RequestException as exc:
                sent = _sent_without_answer(exc)
                uncertain = uncertain or sent
                status = None
                if isinstance(exc, requests.Timeout):
                    reason, detail = TIMEOUT, f"no answer within {self.timeout_s:g} s"
                else:
                    # The exception text quotes the URL: keep only the class, redacted anyway.
                    reason, detail = CONNECTION_ERROR, redact(type(exc).__name__, self._url)
                if sent:
                    detail += " (may have been posted)"
                    if not self.retry_uncertain:
                        return DeliveryResult(False, reason, attempts, status, detail,
                                              uncertain=True)
            else:
                status = response.status_code
                self._note_bucket(response)
                if 200 <= status < 300:
                    return DeliveryResult(True, OK, attempts, status,
                                          accepted_ts_ms=now_ts_ms(), uncertain=uncertain)
                body = redact(response.text[:200], self._url)
                if status == 429:
                    wait_s, named_s = self._rate_limited_wait_s(response, attempts)
                    reason, detail = RATE_LIMITED, f"HTTP 429, retry after {named_s} s"
                    if named_s is not None and named_s > self.max_retry_after_s:
                        log.warning("discord_retry_after_too_long", retry_after_s=named_s,
                                    max_retry_after_s=self.max_retry_after_s)
                        return DeliveryResult(False, RATE_LIMITED, attempts, status, detail,
                                              uncertain=uncertain)
                elif status >= 500:
                    reason, detail = SERVER_ERROR, f"HTTP {status}: {body}"
                else:
                    detail = f"HTTP {status}: {body}"
                    if status in UNUSABLE_STATUSES:
                        self.unusable = f"webhook refused with {detail}; not posting any more"
                    return DeliveryResult(False, CLIENT_ERROR, attempts, status, detail,
                                          uncertain=uncertain)
            if attempts >= self.max_attempts:
                break
            if wait_s is None:
                wait_s = self._backoff_s(attempts)
            log.info("discord_retry", reason=reason, status=status, attempt=attempts,
                     wait_s=round(wait_s, 3))
            if not self._wait(wait_s):
                return DeliveryResult(False, INTERRUPTED, attempts, status, detail,
                                      uncertain=uncertain)
        return DeliveryResult(False, reason, attempts, status, detail, uncertain=uncertain)
