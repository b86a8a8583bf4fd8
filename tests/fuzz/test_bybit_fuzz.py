"""Fuzz the Bybit parser with 10,000 inputs: random text and bytes, and real recorded spot frames
(plus Bybit's documented trade and pong frames: no trade was recorded) with fields deleted or
replaced by hostile values. A frame gives valid records or a RecordError with a reason, and the
frame processor never lets anything else escape either."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given

from services.common.exceptions import RecordError
from services.producer import bybit
from services.producer.processor import FrameProcessor
from tests.conftest import FIXTURES
from tests.fuzz.test_parsers_fuzz import FUZZ, check_record, inputs, reject_reason
from tests.producer.test_bybit import BYBIT_FILE, DOC_TRADE, LINEAR_PONG, SPOT_PONG, SPOT_URL


def _originals() -> tuple[list[str], dict[str, str]]:
    raws, symbols = [], {"BTCUSDT": "BTC-USD"}
    for line in (Path(FIXTURES) / BYBIT_FILE).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("url") != SPOT_URL:
            continue
        raws.append(rec["raw"])
        msg = json.loads(rec["raw"])
        if "data" in msg:  # map every recorded market, so mutations reach the deep fields
            symbols[msg["data"]["s"]] = msg["data"]["s"][:-4] + "-USD"
    return [*raws, DOC_TRADE, SPOT_PONG, LINEAR_PONG], symbols


ORIGINALS, SYMBOLS = _originals()


def test_bybit_parser_never_escapes() -> None:
    reasons: set[str] = set()

    @FUZZ
    @given(inputs(ORIGINALS))
    def run(raw: str | bytes) -> None:
        try:
            parsed = bybit.parse_frame(raw, 1_700_000_000_000, symbol_map=SYMBOLS,
                                       fx_to_usd={"USDT": 0.9995, "USDC": 1.0001})
        except RecordError as exc:
            reasons.add(reject_reason(exc))
            return
        assert parsed.seqs is None or len(parsed.seqs) == len(parsed.records)
        for record in parsed.records:
            check_record(record)
            assert record.exchange == "bybit" and record.symbol in SYMBOLS.values()

    run()
    assert {"not_json", "unknown_type", "bad_price", "missing_field"} <= reasons, reasons


def test_bybit_frame_processor_never_raises() -> None:
    processor = FrameProcessor(bybit.VENUE, SYMBOLS, fx=1.0)

    @FUZZ
    @given(inputs(ORIGINALS))
    def run(raw: str | bytes) -> None:
        outcome = processor.process(raw, 1_700_000_000_000)
        for record in outcome.records:
            check_record(record)
        assert all(reject_reason(RecordError(r)) for r in outcome.errors)

    run()
