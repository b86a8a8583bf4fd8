"""Fuzz the Bitstamp parser, books included: recorded frames (REST snapshots as order_book
frames) with fields deleted or replaced by hostile values, and random text. Whatever comes in,
the parser gives valid records or raises RecordError with a reason, and its books stay usable."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer import bitstamp
from tests.conftest import FIXTURES
from tests.fuzz.test_parsers_fuzz import FUZZ, check_record, inputs, reject_reason

PAIRS = {"ethusd": "ETH-USD", "usdtusd": "USDT-USD", "xrpeur": "XRP-EUR"}


def _frames() -> list[str]:
    raws = []
    for line in (Path(FIXTURES) / "bitstamp.jsonl").read_text().splitlines():
        rec = json.loads(line)
        raw = rec["raw"]
        if rec.get("source") == "rest":  # keep snapshots small: their first 50 levels a side
            body = json.loads(raw)
            body["bids"], body["asks"] = body["bids"][:50], body["asks"][:50]
            raw = bitstamp.snapshot_frame(rec["url"], json.dumps(body))
        raws.append(raw)
    return raws


FRAMES = _frames()
SNAPSHOTS = [r for r in FRAMES if any(f'"channel":"order_book_{p}"' in r for p in PAIRS)]


def test_bitstamp_parser_never_escapes() -> None:
    reasons: set[str] = set()

    @FUZZ
    @given(st.lists(inputs(FRAMES), min_size=1, max_size=4), st.sampled_from(SNAPSHOTS))
    def run(raws: list[str | bytes], snapshot: str) -> None:
        parse = bitstamp.BookParser()
        parse(snapshot, 1_700_000_000_000, symbol_map=PAIRS)
        for raw in raws:
            try:
                parsed = parse(raw, 1_700_000_000_000, symbol_map=PAIRS, fx_to_usd=1.0003)
            except RecordError as exc:
                reasons.add(reject_reason(exc))
                continue
            for record in parsed.records:
                check_record(record)
            assert parsed.seqs is None or len(parsed.seqs) == len(parsed.records)
        for pair in PAIRS:  # whatever was applied, the book still answers
            book = parse.book(pair)
            if book is not None:
                book.top()

    run()
    assert "not_json" in reasons, reasons
