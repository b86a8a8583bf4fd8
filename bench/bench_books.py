"""Order-book benchmark: book maintenance + depth ladder on the recorded depth streams.

Prints numbers; asserts nothing (machines are shared). Single process, single thread:

  python bench/bench_books.py               # every venue with a book module, 5 passes
  python bench/bench_books.py --repeat 20   # more passes over the recordings
  ARB_BOOK_LEVELS=400 python bench/bench_books.py

Workload: every depth message of the venue's recordings (snapshots and updates, REST snapshots
where the venue has them), decoded once beforehand, then per pass handed to fresh books in
receive order: ``depth_parts`` picks the depth frames, the venue's ``DepthSync`` applies them by
its rules, and each message that changed a synced book computes the ladder for
``ARB_DEPTH_NOTIONALS_USD`` (1000, 10000, 100000 USD; fx 1). A venue is measured when its
module ``services/producer/books/<venue>.py`` exists with ``depth_parts`` and ``new_sync``.

Figures per venue: book updates/s (depth messages per CPU second, the figure held to >= 50k),
level changes/s (price levels in those messages), the same with JSON decoding included, and
without the ladder (books only; updates/s).
Memory: ``tracemalloc`` of the books the recording leaves (per book), and of one book filled
to ``ARB_BOOK_LEVELS`` levels per side.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services.producer.books.book import OrderBook  # noqa: E402
from services.producer.books.ladder import ladder  # noqa: E402
from services.producer.decoding import decode  # noqa: E402

FIXTURES = Path(os.environ.get("ARB_FIXTURES_DIR",
                               REPO.parent / "shared" / "fixtures" / "exchanges"))
#: venue module -> recordings carrying its depth channel
VENUE_FILES: dict[str, tuple[str, ...]] = {
    "binance": ("binance.jsonl", "binance_alts_2021.jsonl"),
    "coinbase": ("coinbase_exchange_2021.jsonl",),
    "kraken": ("kraken.jsonl",),
    "okx": ("okx.jsonl",),
    "bybit": ("bybit_orderbook1_2025.jsonl",),
    "bitstamp": ("bitstamp.jsonl",),
}
NOTIONALS_USD = (1000.0, 10000.0, 100000.0)

#: one recorded line: (REST snapshot symbol or None, decoded message, raw text)
_Line = tuple[str | None, Any, str]


def _venue_module(name: str) -> ModuleType | None:
    try:
        module = importlib.import_module(f"services.producer.books.{name}")
    except ImportError:
        return None
    if not (hasattr(module, "depth_parts") and hasattr(module, "new_sync")):
        return None
    return module


def _rest_symbol(module: ModuleType, url: str) -> str | None:
    pair_of_url: Callable[[str], str | None] | None = getattr(module, "pair_of_url", None)
    return pair_of_url(url) if pair_of_url is not None else None


def _load(module: ModuleType, files: tuple[str, ...]) -> list[list[_Line]]:
    """Each file's depth lines (other frames dropped), decoded."""
    out = []
    for name in files:
        lines: list[_Line] = []
        with (FIXTURES / name).open(encoding="utf-8") as fh:
            for text in fh:
                rec = json.loads(text)
                msg = decode(rec["raw"])
                if rec.get("source") == "rest":
                    symbol = _rest_symbol(module, rec.get("url", ""))
                    if symbol is not None:
                        lines.append((symbol, msg, rec["raw"]))
                elif module.depth_parts(msg) is not None:
                    lines.append((None, msg, rec["raw"]))
        out.append(lines)
    return out


def _levels_in(msg: Any) -> int:
    """Price levels a depth message carries (for the level-changes figure)."""
    if isinstance(msg, dict):
        return sum(_levels_in(v) for v in msg.values())
    if isinstance(msg, list):
        if msg and all(isinstance(x, list) and len(x) >= 2 and not isinstance(x[0], (list, dict))
                       for x in msg):
            return len(msg)
        return sum(_levels_in(v) for v in msg)
    return 0


def _run(module: ModuleType, files: list[list[_Line]], max_levels: int,
         decoded: bool = True, with_ladder: bool = True) -> tuple[int, int, int, dict[str, Any]]:
    """One pass with fresh books: (updates, snapshots, ladders, the books)."""
    depth_parts = module.depth_parts
    new_sync = module.new_sync
    updates = snapshots = ladders = 0
    kept: dict[str, Any] = {}
    for lines in files:
        syncs: dict[str, Any] = {}
        for rest_symbol, msg, raw in lines:
            if not decoded:
                msg = decode(raw)
            if rest_symbol is not None:
                sync = syncs.get(rest_symbol)
                if sync is None:
                    sync = syncs[rest_symbol] = new_sync(rest_symbol, max_levels)
                status = sync.on_snapshot(msg)
                snapshots += 1
                if status.changed and sync.synced:
                    ladder(sync.book, NOTIONALS_USD, 1.0)
                    ladders += 1
                continue
            for symbol, part in depth_parts(msg) or ():
                sync = syncs.get(symbol)
                if sync is None:
                    sync = syncs[symbol] = new_sync(symbol, max_levels)
                status = sync.on_update(part)
                updates += 1
                if with_ladder and status.changed and sync.synced:
                    ladder(sync.book, NOTIONALS_USD, 1.0)
                    ladders += 1
        kept.update({f"{id(lines)}:{k}": v for k, v in syncs.items()})
    return updates, snapshots, ladders, kept


def _filled_book_bytes(max_levels: int) -> int:
    """Memory of one OrderBook holding ``max_levels`` bids and asks."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    book = OrderBook(max_levels)
    for i in range(max_levels):
        book.set_bid(60000.0 - i * 0.01 - 0.001 * (i % 7), 0.1 + i)
        book.set_ask(60001.0 + i * 0.01 + 0.001 * (i % 7), 0.2 + i)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert book.depth() == (max_levels, max_levels)
    return used


def _retained_bytes(module: ModuleType, files: list[list[_Line]],
                    max_levels: int) -> tuple[int, int]:
    """(bytes the books of one pass retain, number of books)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    _u, _s, _l, books = _run(module, files, max_levels)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used, len(books)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the recordings")
    parser.add_argument("--levels", type=int,
                        default=int(os.environ.get("ARB_BOOK_LEVELS", "100")),
                        help="levels kept per side (default: ARB_BOOK_LEVELS or 100)")
    args = parser.parse_args()
    print(f"levels per side: {args.levels}; ladder notionals (USD): {NOTIONALS_USD}; "
          f"passes: {args.repeat}")
    print(f"{'venue':<9} {'books':>5} {'updates':>8} {'snaps':>5} {'ladders':>8} "
          f"{'updates/s':>10} {'levels/s':>11} {'+decode/s':>10} {'no ladder':>10} "
          f"{'KiB/book':>9}")
    for name, file_names in VENUE_FILES.items():
        module = _venue_module(name)
        if module is None:
            print(f"{name:<9} (no book module)")
            continue
        files = _load(module, file_names)
        n_levels = sum(_levels_in(msg) for lines in files for sym, msg, _ in lines
                       if sym is None)
        updates, snapshots, ladders, books = _run(module, files, args.levels)  # warm-up
        start = time.process_time()
        for _ in range(args.repeat):
            _run(module, files, args.levels)
        book_s = (time.process_time() - start) / args.repeat
        start = time.process_time()
        for _ in range(args.repeat):
            _run(module, files, args.levels, decoded=False)
        decode_s = (time.process_time() - start) / args.repeat
        start = time.process_time()
        for _ in range(args.repeat):
            _run(module, files, args.levels, with_ladder=False)
        no_ladder_s = (time.process_time() - start) / args.repeat
        retained, n_books = _retained_bytes(module, files, args.levels)
        print(f"{name:<9} {len(books):>5} {updates:>8} {snapshots:>5} {ladders:>8} "
              f"{updates / book_s:>10,.0f} {n_levels / book_s:>11,.0f} "
              f"{updates / decode_s:>10,.0f} {updates / no_ladder_s:>10,.0f} "
              f"{retained / max(1, n_books) / 1024:>9.1f}")
    print(f"one OrderBook full at {args.levels} levels per side: "
          f"{_filled_book_bytes(args.levels) / 1024:.1f} KiB (tracemalloc)")


if __name__ == "__main__":
    main()
