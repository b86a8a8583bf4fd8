"""Order books in the producer: one per (venue, market), kept from the venue's depth channel.

A book here is the best ``ARB_BOOK_LEVELS`` bids and asks (floats, in the venue's quote
currency), rebuilt from a snapshot and kept by the venue's own ordering rules, so that the
quote can carry a depth ladder (USD VWAPs for ``ARB_DEPTH_NOTIONALS_USD``). A book the rules
can no longer vouch for (a gap, a failed checksum, a crossed book, a bad message) is emptied
and resynced; it never yields a ladder meanwhile. A bounded book whose venue reports the whole
book (Binance, Coinbase, Bitstamp) keeps a trusted edge: its ladder never reaches past levels
it knows (None: too thin), and a side thinned out asks for a fresh snapshot while it serves.
Venue rules, one line each:

- binance: ``depth@100ms`` diffs buffered until a REST snapshot, bridged and chained by the
  ``U``/``u`` update ids; a hole needs a new snapshot.
- coinbase: ``level2_batch`` (public; ``level2`` needs authentication) snapshot + absolute
  updates, no sequence numbers; a crossed book or an update before the snapshot resubscribes.

Each venue module exposes ``depth_parts(decoded_frame)`` and ``new_sync(venue_symbol,
max_levels)`` (see :mod:`services.producer.books.base`).
"""

from services.producer.books.base import (
    NEEDS,
    PROBLEMS,
    BookStatus,
    DepthSync,
    read_level,
    read_levels,
)
from services.producer.books.book import OrderBook
from services.producer.books.ladder import ladder

__all__ = [
    "NEEDS",
    "PROBLEMS",
    "BookStatus",
    "DepthSync",
    "OrderBook",
    "ladder",
    "read_level",
    "read_levels",
]
