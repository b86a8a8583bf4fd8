"""Order-book benchmark: book maintenance + depth ladder on the recorded depth streams.

Prints numbers; asserts nothing (machines are shared). Single process, single thread:

  python bench/bench_books.py                        # every venue: 3 repeats of 5 passes
  python bench/bench_books.py --repeat 5 --passes 20 # steadier figures
  ARB_BOOK_LEVELS=400 python bench/bench_books.py

Workload: every depth message of the venue's recordings (snapshots and updates, REST snapshots
where the venue has them), decoded once beforehand, then per pass handed to fresh books in
receive order: ``depth_parts`` picks the depth frames, the venue's ``DepthSync`` applies them by
its rules, and each message that changed a synced book computes the ladder for
``ARB_DEPTH_NOTIONALS_USD`` (1000, 10000, 100000 USD; fx 1). A venue is measured when its
module ``services/producer/books/<venue>.py`` exists with ``depth_parts`` and ``new_sync``.

Figures per venue: book updates/s, where one update is one venue depth message (a WebSocket
depth message, or one ``data`` item of it where a frame carries several; REST snapshots are
applied and timed but not counted), per CPU second: the median and range over ``--repeat``
repeats of ``--passes`` passes each (the figure held to >= 50k); price levels/s (the levels
those messages carry, applied or not); updates/s with JSON decoding included, and without the
ladder (books only), medians.
Memory: ``tracemalloc`` of the books one pass leaves (per book, every book synced from the
recording) at ``ARB_BOOK_LEVELS`` and at 1000 levels per side, and of one book filled to
``ARB_BOOK_LEVELS`` levels per side.
Host speed: the same code ran twice as fast on one host of this kind as on another, so the
first line prints a fixed pure-Python reference loop (dict, list and float work, as a book
does) in million iterations per CPU second: divide figures by it to compare hosts.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services.producer.books.book import (  # noqa: E402
    _FLOATS_MAX,
    OrderBook,
    _number,
    clear_text_cache,
)
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


def _text_cache_bytes() -> int:
    """Memory of the decimal-text cache when full (once per process, whatever the books)."""
    texts = [f"{60000 + i * 0.01:.8f}" for i in range(_FLOATS_MAX)]
    clear_text_cache()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for text in texts:
        _number(text)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    clear_text_cache()
    # the texts themselves are the messages' own strings, kept alive by the cache
    return used + sum(sys.getsizeof(t) for t in texts)


def _retained_bytes(module: ModuleType, files: list[list[_Line]],
                    max_levels: int) -> tuple[int, int]:
    """(bytes the books of one pass retain, number of books); the shared decimal-text cache
    is left out (see :func:`_text_cache_bytes`)."""
    clear_text_cache()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    _u, _s, _l, books = _run(module, files, max_levels)
    clear_text_cache()
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used, len(books)


def _reference_loop(n: int = 300_000) -> None:
    """Fixed work of the book's kinds: dict get/set on float keys, list appends, float sums."""
    sizes: dict[float, float] = {}
    keys: list[float] = []
    total = 0.0
    for i in range(n):
        key = 60000.0 + (i & 255) * 0.01
        size = sizes.get(key, 0.0) + 0.5
        sizes[key] = size
        total += key * size
        keys.append(key)
        if len(keys) > 256:
            keys.clear()


def _host_speed_m_per_s(repeat: int = 5, n: int = 300_000) -> float:
    """Reference-loop iterations per CPU second, in millions (the best of ``repeat``)."""
    best_s = min(_timed(lambda: _reference_loop(n), repeat, 1))
    return n / best_s / 1e6


def _timed(run: Callable[[], object], repeat: int, passes: int) -> list[float]:
    """CPU seconds per pass, one figure per repeat."""
    out = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(passes):
            run()
        out.append((time.process_time() - start) / passes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repeats (median and range)")
    parser.add_argument("--passes", type=int, default=5, help="passes over the recordings "
                        "per repeat")
    parser.add_argument("--levels", type=int,
                        default=int(os.environ.get("ARB_BOOK_LEVELS", "100")),
                        help="levels kept per side (default: ARB_BOOK_LEVELS or 100)")
    parser.add_argument("--venue", action="append", choices=sorted(VENUE_FILES),
                        help="only this venue (repeatable)")
    args = parser.parse_args()
    print(f"levels per side: {args.levels}; ladder notionals (USD): {NOTIONALS_USD}; "
          f"{args.repeat} repeats x {args.passes} passes; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; host speed "
          f"{_host_speed_m_per_s():.2f} M reference-loop iterations/s")
    print("update = one venue depth message (REST snapshots timed, not counted); "
          "CPU time, one thread")
    print(f"{'venue':<9} {'books':>5} {'updates':>7} {'snaps':>5} {'ladders':>7} "
          f"{'updates/s median [range]':>27} {'levels/s':>10} {'+decode/s':>9} "
          f"{'no ladder':>9} {'KiB/book':>8} {'@1000':>7}")
    for name, file_names in VENUE_FILES.items():
        if args.venue and name not in args.venue:
            continue
        module = _venue_module(name)
        if module is None:
            print(f"{name:<9} (no book module)")
            continue
        files = _load(module, file_names)
        n_levels = sum(_levels_in(msg) for lines in files for sym, msg, _ in lines
                       if sym is None)
        updates, snapshots, ladders, books = _run(module, files, args.levels)  # warm-up
        book_s = _timed(lambda m=module, f=files: _run(m, f, args.levels),
                        args.repeat, args.passes)
        decode_s = _timed(lambda m=module, f=files: _run(m, f, args.levels, decoded=False),
                          args.repeat, args.passes)
        no_ladder_s = _timed(lambda m=module, f=files: _run(m, f, args.levels,
                                                             with_ladder=False),
                             args.repeat, args.passes)
        median = statistics.median(book_s)
        rates = f"{updates / median:,.0f} [{updates / max(book_s):,.0f}-" \
                f"{updates / min(book_s):,.0f}]"
        retained, n_books = _retained_bytes(module, files, args.levels)
        retained_1000, n_books_1000 = _retained_bytes(module, files, 1000)
        print(f"{name:<9} {len(books):>5} {updates:>7} {snapshots:>5} {ladders:>7} "
              f"{rates:>27} {n_levels / median:>10,.0f} "
              f"{updates / statistics.median(decode_s):>9,.0f} "
              f"{updates / statistics.median(no_ladder_s):>9,.0f} "
              f"{retained / max(1, n_books) / 1024:>8.1f} "
              f"{retained_1000 / max(1, n_books_1000) / 1024:>7.1f}")
    print(f"one OrderBook full at {args.levels} levels per side: "
          f"{_filled_book_bytes(args.levels) / 1024:.1f} KiB (tracemalloc); the decimal-text "
          f"cache shared by all books: {_text_cache_bytes() / 1024:.0f} KiB when full "
          f"({_FLOATS_MAX} texts)")


if __name__ == "__main__":
    main()
