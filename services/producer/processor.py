"""The one record path: a raw frame and its receive time in, records and counted events out.

Every frame, whoever reads it, goes through the same steps in the same order:

1. **parse**: the venue's connector (``venue.parse_frame``) at the current stablecoin rate;
2. **sequence**: the venue's numbers on each record (``sequence.py``); a gap is counted and the
   record kept, a duplicate or older update is counted and dropped;
3. **fx**: a quote of a rate market (USDT-USD ...) updates the shared live rates (``fx.py``);
   rate markets read only for their rate are never published;
4. **book**: every venue message proves liveness, every quote becomes the last one to refresh
   (``quote_book.py``);
5. **metrics**: messages by kind, errors by reason, feed latency (``metrics.FeedCounts``).

The live feed hands it each frame at the receive clock, the replay at its virtual clock, and
record mode taps the live feed's frames, so all three count, drop and book the same way. No
sockets, no Kafka, no clock of its own: time is the ``recv_ts_ms`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import NamedTuple

import structlog

from services.common.exceptions import RecordError
from services.common.logging import truncate
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.connector import SeqSpan, Venue
from services.producer.fx import FX_MARKETS, FxRates
from services.producer.metrics import FeedCounts
from services.producer.quote_book import QuoteBook
from services.producer.sequence import RESYNC, STALE, SequenceTracker

log = structlog.get_logger(__name__)

#: RecordError reasons that say nothing about the venue being alive (not one of its messages).
NOT_VENUE_MESSAGE = frozenset({"not_json", "unknown_type"})
_NO_ERRORS: tuple[str, ...] = ()
_NO_SEQS: tuple[None] = (None,)


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
    ) -> None:
        """``symbol_map``: venue symbol -> canonical symbol of every market to read.
        ``fx``: the shared live rates, or one fixed rate for every non-USD market.
        ``book``: the quote book to keep (a replay shares one among its venues).
        ``unpublished``: canonical symbols read only for their rate, never published.
        ``adjust``: applied to each parsed record before anything else (the replay moves
        records onto its virtual clock and price level)."""
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

    def process(self, raw: str | bytes, recv_ts_ms: int) -> Outcome:
        """One frame received at ``recv_ts_ms``: its records to publish and what it counted.

        A bad frame is counted by reason (logged once per reason), never raised.
        """
        fx = self._fixed_fx if self.fx is None else self.fx.table(recv_ts_ms)
        try:
            parsed = self._parse(raw, recv_ts_ms, symbol_map=self.symbol_map, fx_to_usd=fx)
        except RecordError as exc:
            return self._rejected(exc, raw, recv_ts_ms)
        kind, records, seqs = parsed.kind, parsed.records, parsed.seqs
        self.last_alive_ms = recv_ts_ms
        self.book.on_message(self.name, recv_ts_ms)
        counts = self.counts
        counts.message(kind)
        if not records:
            return Outcome(kind, records, True)
        out: list[PriceRecord] = []
        errors: list[str] | None = None
        adjust, fx_rates, unpublished = self.adjust, self.fx, self.unpublished
        for rec, span in zip(records, seqs or _NO_SEQS * len(records), strict=True):
            if adjust is not None:
                rec = adjust(rec)
            if span is not None:
                reason = self._sequence(rec, span)
                if reason is not None:
                    counts.error(reason)
                    errors = [reason] if errors is None else [*errors, reason]
                    if reason != "sequence_gap":
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
        return Outcome(kind, out, True, _NO_ERRORS if errors is None else tuple(errors))

    def forget(self) -> None:
        """The connection is gone: its quotes, its stablecoin rates, its numbering and its
        parser's state (books) with it."""
        self.book.forget(self.name)
        if self.fx is not None:
            self.fx.forget(self.name)
        self.restart()

    def restart(self) -> None:
        """A new stream of frames (a reconnect, a replay loop): numbering and parser state
        start over."""
        self.seq.reset()
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
        outcome = self.seq.check(key, first, last, dense=is_trade)
        if outcome == 0:
            return None
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
