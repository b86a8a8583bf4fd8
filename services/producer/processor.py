"""The one record path: a raw frame and its receive time in, records and counted events out.

Every frame, whoever reads it, goes through the same steps in the same order:

1. **parse**: the venue's connector (``venue.parse_frame``) at the current stablecoin rate;
2. **sequence**: the venue's numbers on each record (``sequence.py``); a gap is counted and the
   record kept, a duplicate or older update is counted and dropped; trade ids carry over an
   unplanned reconnect, so the trades missed while the feed was away are counted
   (``missed_across_reconnect``) on the first trade after it;
3. **fx**: a quote of a rate market (USDT-USD ...) updates the shared live rates (``fx.py``);
   rate markets read only for their rate are never published;
4. **depth**: a venue with a depth channel (``Venue.depth``) keeps one order book per market
   (``books/``, ``ARB_BOOK_LEVELS`` per side); its frames go to the market's DepthSync, whose
   :class:`~services.producer.books.base.BookStatus` feeds the book metrics and whose needs
   come back as :class:`BookAction` s for the caller (the live feed fetches a REST snapshot or
   resubscribes; a replay has its snapshots on the tape). Each quote of a market with a synced
   book carries the ladder (``ARB_DEPTH_NOTIONALS_USD`` at the quote's fx rate, the quote's own
   best levels first: ``books/ladder.py``), and a depth
   update that changes the ladder re-publishes the market's latest quote with it (same best
   bid/ask, ``ts_ms`` = now), so the job sees depth move without waiting for the top to move.
   The ladder is lazy: computed when a quote is published and only after the book changed;
5. **book**: every venue message proves liveness, every quote becomes the last one to refresh
   (``quote_book.py``);
6. **metrics**: messages by kind, errors by reason, feed latency (``metrics.FeedCounts``).

The live feed hands it each frame at the receive clock, the replay at its virtual clock, and
record mode taps the live feed's frames, so all three count, drop and book the same way. No
sockets, no Kafka, no clock of its own: time is the ``recv_ts_ms`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import structlog

from services.common.exceptions import RecordError
from services.common.logging import truncate
from services.common.messages import Ladder, PriceRecord, Quote, Trade
from services.producer.books.base import BookStatus
from services.producer.books.ladder import Top, ladder
from services.producer.connector import SeqSpan, Venue
from services.producer.decoding import decode
from services.producer.fx import FX_MARKETS, FxRates
from services.producer.metrics import BookCounts, FeedCounts
from services.producer.quote_book import QuoteBook
from services.producer.sequence import RESYNC, STALE, SequenceTracker

log = structlog.get_logger(__name__)

#: Sequence findings whose record is still published (the others are older or repeated ones).
KEPT_SEQUENCE_REASONS = frozenset({"sequence_gap", "missed_across_reconnect"})
#: RecordError reasons that say nothing about the venue being alive (not one of its messages).
NOT_VENUE_MESSAGE = frozenset({"not_json", "unknown_type"})
_NO_ERRORS: tuple[str, ...] = ()
_NO_SEQS: tuple[None] = (None,)
_BAD_DEPTH = BookStatus(False, "bad_level")
#: what a published quote showed of its market's depth: the ladder and the top it came with
_Shown = tuple[Ladder | None, float, float | None, float, float | None]


def _shown(quote: Quote) -> _Shown:
    return quote.depth, quote.bid, quote.bid_size, quote.ask, quote.ask_size


class BookAction(NamedTuple):
    """What a market's book needs from the caller (the sync's ``need``)."""

    #: "snapshot" (fetch the venue's REST snapshot, hand it to ``on_snapshot``) or
    #: "resubscribe" (ask the socket for a fresh book, or roll over where it cannot)
    need: str
    venue_symbol: str
    #: the problem that made the book resync, None for a plain request (a thin book)
    problem: str | None = None


class Outcome(NamedTuple):
    """What one frame gave."""

    #: the frame's kind (the ``channel`` label); None when it did not parse
    kind: str | None
    #: the records to publish, in order
    records: list[PriceRecord]
    #: one of the venue's messages, even with bad values: proof that the connection is alive
    usable: bool
    #: the ``arb_feed_errors_total`` reasons this frame counted, in order
    errors: tuple[str, ...] = _NO_ERRORS
    #: what the frame's depth messages ask of the caller (see :class:`BookAction`)
    actions: tuple[BookAction, ...] = ()


class DiscardBookCounts:
    """BookCounts that count nothing (a replay's scout, a test)."""

    def status(self, status: BookStatus) -> None:
        pass

    def changed(self, symbol: str, ts_s: float | None = None) -> None:
        pass

    def levels(self, symbol: str, book: Any) -> None:
        pass


class DiscardCounts:
    """FeedCounts that count nothing: for a processor whose frames are only looked at."""

    def message(self, kind: str) -> None:
        pass

    def error(self, reason: str) -> None:
        pass

    def latency_ms(self, latency_ms: int) -> None:
        pass


class FrameProcessor:
    """One venue's parse, sequence, fx, book and metrics state; pure apart from its counts."""

    def __init__(
        self,
        venue: Venue,
        symbol_map: Mapping[str, str],
        *,
        fx: FxRates | float = 1.0,
        book: QuoteBook | None = None,
        counts: FeedCounts | None = None,
        unpublished: Collection[str] = (),
        adjust: Callable[[PriceRecord], PriceRecord] | None = None,
        depth_notionals_usd: Sequence[float] = (),
        book_levels: int = 100,
        book_counts: BookCounts | DiscardBookCounts | None = None,
    ) -> None:
        """``symbol_map``: venue symbol -> canonical symbol of every market to read.
        ``fx``: the shared live rates, or one fixed rate for every non-USD market.
        ``book``: the quote book to keep (a replay shares one among its venues).
        ``unpublished``: canonical symbols read only for their rate, never published.
        ``adjust``: applied to each parsed record before anything else (the replay moves
        records onto its virtual clock and price level).
        ``depth_notionals_usd``: the ladder's sizes (ARB_DEPTH_NOTIONALS_USD); () keeps no
        books. ``book_levels``: levels per side (ARB_BOOK_LEVELS)."""
        self.venue = venue
        self.name = venue.name
        self.symbol_map = symbol_map
        self.fx = fx if isinstance(fx, FxRates) else None
        self._fixed_fx = None if isinstance(fx, FxRates) else float(fx)
        self.book = book if book is not None else QuoteBook()
        self.seq = SequenceTracker()
        self.counts: FeedCounts = counts if counts is not None else DiscardCounts()
        self.unpublished = frozenset(unpublished)
        self.adjust = adjust
        #: receive time of the last venue message, for the last-message gauge
        self.last_alive_ms: int | None = None
        #: the venue's parser; one of its own when the venue's keeps state (a book)
        self._parse = venue.make_parser()
        self._logged_reasons: set[str] = set()
        self.notionals_usd = tuple(depth_notionals_usd)
        self.book_levels = book_levels
        #: the venue's depth support, None when it has none or no ladder is configured
        self.depth = venue.depth if self.notionals_usd else None
        self.book_counts = book_counts if book_counts is not None else DiscardBookCounts()
        #: venue symbol -> its DepthSync (created on its first depth message)
        self.syncs: dict[str, Any] = {}
        #: venue symbol -> (ladder, fx rate and quote top it was computed for; None: the
        #: book's own top) while valid
        self._ladders: dict[str, tuple[Ladder | None, float, Top | None]] = {}
        #: venue symbol -> the depth and top its latest published quote carried
        self._published: dict[str, _Shown | None] = {}
        #: venue symbol -> its latest quote as the venue sent it (before ``adjust``, without
        #: depth), to re-publish
        self._last_quotes: dict[str, Quote] = {}
        self._logged_books: set[tuple[str, str]] = set()

    def process(self, raw: str | bytes, recv_ts_ms: int) -> Outcome:
        """One frame received at ``recv_ts_ms``: its records to publish and what it counted.

        A bad frame is counted by reason (logged once per reason), never raised.
        """
        fx = self._fixed_fx if self.fx is None else self.fx.table(recv_ts_ms)
        changed: list[str] | None = None
        actions: tuple[BookAction, ...] = ()
        if self.depth is not None:
            changed, actions = self._depth_frame(raw, recv_ts_ms)
        try:
            parsed = self._parse(raw, recv_ts_ms, symbol_map=self.symbol_map, fx_to_usd=fx)
        except RecordError as exc:
            outcome = self._rejected(exc, raw, recv_ts_ms)
            if changed or actions:
                records = self._republish(changed, recv_ts_ms, ()) if changed else []
                return outcome._replace(records=records, actions=actions)
            return outcome
        kind, records, seqs = parsed.kind, parsed.records, parsed.seqs
        self.last_alive_ms = recv_ts_ms
        self.book.on_message(self.name, recv_ts_ms)
        counts = self.counts
        counts.message(kind)
        if not records:
            if changed:
                return Outcome(kind, self._republish(changed, recv_ts_ms, ()), True,
                               actions=actions)
            return Outcome(kind, records, True, actions=actions)
        out: list[PriceRecord] = []
        depth_on = self.depth is not None
        errors: list[str] | None = None
        adjust, fx_rates, unpublished = self.adjust, self.fx, self.unpublished
        for rec, span in zip(records, seqs or _NO_SEQS * len(records), strict=True):
            if depth_on and rec.__class__ is Quote:
                rec = self._with_depth(rec)
            if adjust is not None:
                rec = adjust(rec)
            if span is not None:
                reason = self._sequence(rec, span)
                if reason is not None:
                    counts.error(reason)
                    errors = [reason] if errors is None else [*errors, reason]
                    if reason not in KEPT_SEQUENCE_REASONS:
                        continue  # a duplicate or an older update
            if fx_rates is not None and rec.symbol in FX_MARKETS and rec.__class__ is Quote:
                try:
                    fx_rates.on_quote(rec)
                except RecordError as exc:
                    counts.error(exc.reason)
                    errors = [exc.reason] if errors is None else [*errors, exc.reason]
                    continue
            if unpublished and rec.symbol in unpublished:
                continue
            if rec.exchange_ts_ms is not None:
                counts.latency_ms(rec.recv_ts_ms - rec.exchange_ts_ms)
            if rec.__class__ is Quote:
                self.book.on_quote(rec)
            out.append(rec)
        if changed:
            out.extend(self._republish(changed, recv_ts_ms, out))
        return Outcome(kind, out, True, _NO_ERRORS if errors is None else tuple(errors),
                       actions)

    # --- depth --------------------------------------------------------------------------

    def on_snapshot(self, venue_symbol: str, body: str | bytes | Mapping[str, Any],
                    recv_ts_ms: int) -> Outcome:
        """A REST snapshot of ``venue_symbol``'s book (the body as fetched or recorded):
        the records it gives (quotes re-published with their new ladder) and what it asks."""
        sync = self._sync(venue_symbol) if self.depth is not None else None
        if sync is None:
            return Outcome(None, [], False)
        try:
            snapshot = decode(body) if isinstance(body, str | bytes) else body
            if snapshot.__class__ is not dict:
                raise RecordError("bad_level", f"snapshot is {type(snapshot).__name__}")
            status = sync.on_snapshot(snapshot)
        except RecordError as exc:
            status = _BAD_DEPTH._replace(need="snapshot")
            self._log_book(venue_symbol, status, exc.detail)
        actions = self._book_status(venue_symbol, sync, status, recv_ts_ms)
        if status.changed:
            self._ladders.pop(venue_symbol, None)
            self.book_counts.changed(self.symbol_map[venue_symbol], recv_ts_ms / 1000)
        records = self._republish([venue_symbol], recv_ts_ms, ()) if status.changed else []
        return Outcome("snapshot", records, False, actions=actions)

    def on_rest(self, url: str, body: str, recv_ts_ms: int,
                venue_symbol: str | None = None) -> Outcome:
        """A REST response (fetched live or recorded): a depth snapshot for the market its URL
        names, and, for a venue that reads it as a frame (``Venue.snapshot_frame``), that
        frame too."""
        outcome = Outcome(None, [], False)
        depth = self.depth
        if depth is not None:
            if venue_symbol is None and depth.pair_of_url is not None:
                venue_symbol = depth.pair_of_url(url)
            if venue_symbol is not None and venue_symbol in self.symbol_map:
                outcome = self.on_snapshot(venue_symbol, body, recv_ts_ms)
        frame = None if self.venue.snapshot_frame is None else self.venue.snapshot_frame(url,
                                                                                        body)
        if frame is not None:
            framed = self.process(frame, recv_ts_ms)
            outcome = framed._replace(records=[*outcome.records, *framed.records],
                                      actions=(*outcome.actions, *framed.actions))
        return outcome

    def book_levels_gauges(self) -> None:
        """Every book's kept depth to the levels gauge (from a timer)."""
        for venue_symbol, sync in self.syncs.items():
            self.book_counts.levels(self.symbol_map[venue_symbol], sync.book)

    def _sync(self, venue_symbol: str) -> Any:
        """The market's DepthSync, created on first use; None for a market not read."""
        sync = self.syncs.get(venue_symbol)
        if sync is None:
            if venue_symbol not in self.symbol_map or self.depth is None:
                return None
            symbol = self.symbol_map[venue_symbol]
            if symbol in self.unpublished:
                return None
            sync = self.syncs[venue_symbol] = self.depth.new_sync(venue_symbol, self.book_levels)
        return sync

    def _depth_frame(self, raw: str | bytes,
                     recv_ts_ms: int) -> tuple[list[str] | None, tuple[BookAction, ...]]:
        """A frame's depth messages to their books: the markets whose book changed and the
        actions asked for. Not a depth frame (or not JSON: the parser rejects it): nothing."""
        depth = self.depth
        assert depth is not None  # noqa: S101 - checked by the caller
        try:
            parts = depth.depth_parts(decode(raw))
        except RecordError as exc:
            self._log_book("?", _BAD_DEPTH, exc.detail)
            self.book_counts.status(_BAD_DEPTH)
            return None, ()
        if not parts:
            return None, ()
        changed: list[str] | None = None
        actions: tuple[BookAction, ...] = ()
        for venue_symbol, message in parts:
            sync = self._sync(venue_symbol)
            if sync is None:
                continue  # a market we do not read
            try:
                status = sync.on_update(message)
            except RecordError as exc:
                status = _BAD_DEPTH
                self._log_book(venue_symbol, status, exc.detail)
            if status.problem is not None or status.need is not None:
                actions = (*actions, *self._book_status(venue_symbol, sync, status, recv_ts_ms))
            if status.changed:
                self._ladders.pop(venue_symbol, None)
                self.book_counts.changed(self.symbol_map[venue_symbol], recv_ts_ms / 1000)
                changed = [venue_symbol] if changed is None else [*changed, venue_symbol]
        return changed, actions

    def _book_status(self, venue_symbol: str, sync: Any, status: BookStatus,
                     recv_ts_ms: int) -> tuple[BookAction, ...]:
        """Count and log one status's problem; its need as an action."""
        del sync, recv_ts_ms
        if status.problem is not None:
            self.book_counts.status(status)
            self._log_book(venue_symbol, status, None)
        if status.need is None:
            return ()
        return (BookAction(status.need, venue_symbol, status.problem),)

    def _log_book(self, venue_symbol: str, status: BookStatus, detail: str | None) -> None:
        """Each book problem once per reason (a resyncing book would flood the log)."""
        reason = status.problem or "unknown"
        key = (self.name, reason)
        if key in self._logged_books:
            return
        self._logged_books.add(key)
        log.warning("book_problem", exchange=self.name, symbol=venue_symbol, reason=reason,
                    need=status.need, detail=detail,
                    note="logged once per venue and reason; counted in arb_book_* metrics")

    def _ladder(self, venue_symbol: str, fx: float, top: Top | None) -> Ladder | None:
        """The market's ladder at ``fx`` with the quote's ``top`` leading the walk (None: the
        quote's top is the book's own): None while its book is not synced; computed once per
        book change (and rate and top), cached until the next."""
        cached = self._ladders.get(venue_symbol)
        if cached is not None and cached[1] == fx and cached[2] == top:
            return cached[0]
        sync = self.syncs.get(venue_symbol)
        levels: Ladder | None = None
        if sync is not None and sync.synced:
            try:
                levels = ladder(sync.book, self.notionals_usd, fx, top)
            except RecordError:
                levels = None
        self._ladders[venue_symbol] = (levels, fx, top)
        return levels

    def _with_depth(self, quote: Quote) -> Quote:
        """The parsed quote with its market's depth (the venue's own kept, before ``adjust``,
        to re-publish)."""
        venue_symbol = quote.venue_symbol
        self._last_quotes[venue_symbol] = quote
        if venue_symbol not in self.syncs:
            self._published[venue_symbol] = None
            return quote
        out = self._depth_quote(quote)
        self._published[venue_symbol] = _shown(out)
        return out

    def _depth_quote(self, quote: Quote) -> Quote:
        """``quote`` with its market's ladder; for a venue whose book leads its ticker
        (``DepthSupport.book_leads``), with the synced book's best levels as its top too."""
        venue_symbol = quote.venue_symbol
        depth = self.depth
        sync = self.syncs.get(venue_symbol)
        fx = quote.fx_to_usd
        if depth is not None and depth.book_leads and sync is not None and sync.synced:
            bid, ask = sync.book.best_bid(), sync.book.best_ask()
            if bid is not None and ask is not None:
                levels = self._ladder(venue_symbol, fx, None)
                return replace(quote, bid=bid[0] * fx, bid_size=bid[1], ask=ask[0] * fx,
                               ask_size=ask[1], depth=levels)
        top = (quote.bid / fx, quote.bid_size, quote.ask / fx, quote.ask_size)
        levels = self._ladder(venue_symbol, fx, top)
        return quote if levels is None else replace(quote, depth=levels)

    def _republish(self, venue_symbols: list[str], now_ms: int,
                   published: Sequence[PriceRecord]) -> list[PriceRecord]:
        """The latest quote of each market whose depth changed, again with the new ladder
        (and, where the book leads, its new top; a market quoted in this very frame already
        carries them)."""
        out: list[PriceRecord] = []
        quoted = {r.venue_symbol for r in published if r.__class__ is Quote}
        for venue_symbol in dict.fromkeys(venue_symbols):
            last = self._last_quotes.get(venue_symbol)
            if last is None or venue_symbol in quoted:
                continue
            fresh = self._depth_quote(last)
            shown = _shown(fresh)
            if shown == self._published.get(venue_symbol):
                continue
            self._published[venue_symbol] = shown
            rec: PriceRecord = replace(fresh, ts_ms=now_ms, recv_ts_ms=now_ms, refresh=False)
            if self.adjust is not None:
                rec = self.adjust(rec)
            self.book.on_quote(rec)
            out.append(rec)
        return out

    def forget(self) -> None:
        """The connection is gone: its quotes, its stablecoin rates, its numbering and its
        parser's state (books) with it; only the last trade ids stay, so the trades missed
        until the next connection delivers are counted."""
        self.book.forget(self.name)
        if self.fx is not None:
            self.fx.forget(self.name)
        self.restart(keep_trade_ids=True)

    def restart(self, *, keep_trade_ids: bool = False) -> None:
        """A new stream of frames (a reconnect, a replay loop): numbering, parser state and
        order books start over; ``keep_trade_ids`` (a reconnect): the venue's trade ids go on
        where they were."""
        if keep_trade_ids:
            self.seq.reconnect()
        else:
            self.seq.reset()
        for sync in self.syncs.values():
            sync.reset()
        self._ladders.clear()
        self._published.clear()
        self._last_quotes.clear()
        if self.venue.new_parser is not None:
            self._parse = self.venue.new_parser()

    def _rejected(self, exc: RecordError, raw: str | bytes, recv_ts_ms: int) -> Outcome:
        reason = exc.reason
        self.counts.error(reason)
        if reason not in self._logged_reasons:  # once per reason: no log floods
            self._logged_reasons.add(reason)
            log.warning("feed_bad_frame", exchange=self.name, reason=reason, detail=exc.detail,
                        raw=truncate(raw))
        if reason in NOT_VENUE_MESSAGE:
            return Outcome(None, [], False, (reason,))
        self.last_alive_ms = recv_ts_ms
        self.book.on_message(self.name, recv_ts_ms)
        return Outcome(None, [], True, (reason,))

    def _sequence(self, rec: PriceRecord, span: SeqSpan) -> str | None:
        """Check the venue's numbers: None, ``sequence_gap`` (kept), ``duplicate`` or
        ``out_of_order`` (dropped)."""
        is_trade = rec.__class__ is Trade
        key = (rec.type, rec.venue_symbol)
        first, last = span
        across = is_trade and self.seq.carried(key)
        outcome = self.seq.check(key, first, last, dense=is_trade)
        if outcome == 0:
            return None
        if outcome > 0 and across:  # missed while the feed was away
            log.warning("feed_trades_missed_across_reconnect", exchange=self.name,
                        symbol=rec.venue_symbol, after=first - outcome - 1, next=first,
                        missing=outcome)
            return "missed_across_reconnect"
        if outcome > 0:  # ``outcome`` numbers are missing after the previous one
            log.warning("feed_sequence_gap", exchange=self.name, stream=rec.type,
                        symbol=rec.venue_symbol, after=first - outcome - 1, next=first,
                        missing=outcome)
            return "sequence_gap"
        if outcome == STALE:  # the previous number stays the last one
            return "duplicate" if is_trade or last == self.seq.last(key) else "out_of_order"
        if outcome == RESYNC:
            log.warning("feed_sequence_restarted", exchange=self.name, stream=rec.type,
                        symbol=rec.venue_symbol, was=self.seq.resynced_from, now=last)
        return None
