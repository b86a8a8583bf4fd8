"""Producer test helpers: recorded frames by venue and kind, a list sink, fresh metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.common.messages import Quote, Trade
from services.producer.metrics import ProducerMetrics
from services.producer.replay import Frame, load_frames

BINANCE_FILE = "binance.jsonl"
COINBASE_FILE = "coinbase_exchange_2021.jsonl"
KRAKEN_FILE = "kraken.jsonl"
OKX_FILE = "okx.jsonl"


def binance_kind(frame: Frame) -> str:
    """The stream's channel as the test sees it: the part after the symbol."""
    return json.loads(frame.raw)["stream"].split("@", 1)[1]


def liveness_stream(binance_frames: list[Frame], frames: int,
                    gap_s: float) -> list[str | float]:
    """One Binance quote, then ``frames`` depth frames ``gap_s`` apart: the venue alive, its
    quote unchanged (a script for :class:`tests.producer.ws_venue.Session`)."""
    ticker = next(f.raw for f in binance_frames if binance_kind(f) == "bookTicker")
    depth = next(f.raw for f in binance_frames if binance_kind(f) == "depth@100ms")
    steps: list[str | float] = [ticker]
    for _ in range(frames):
        steps += [gap_s, depth]
    return steps


def coinbase_msg(frame: Frame) -> dict[str, Any]:
    return json.loads(frame.raw)


class ListSink:
    """Collects published records (stands in for Kafka)."""

    def __init__(self) -> None:
        self.records: list[Quote | Trade] = []

    def publish(self, record: Quote | Trade) -> bool:
        self.records.append(record)
        return True

    def of(self, kind: type, *, refresh: bool | None = None) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)
                and (refresh is None or getattr(r, "refresh", None) == refresh)]


@pytest.fixture
def binance_frames(fixtures_dir: Path) -> tuple[Frame, ...]:
    return load_frames(fixtures_dir / BINANCE_FILE)


@pytest.fixture
def coinbase_frames(fixtures_dir: Path) -> tuple[Frame, ...]:
    return load_frames(fixtures_dir / COINBASE_FILE)


@pytest.fixture
def kraken_frames(fixtures_dir: Path) -> tuple[Frame, ...]:
    return load_frames(fixtures_dir / KRAKEN_FILE)


@pytest.fixture
def okx_frames(fixtures_dir: Path) -> tuple[Frame, ...]:
    return load_frames(fixtures_dir / OKX_FILE)


@pytest.fixture
def find_frame() -> Callable[..., Frame]:
    """The first frame whose decoded message matches every given predicate."""

    def find(frames: tuple[Frame, ...], *preds: Callable[[Any], bool]) -> Frame:
        for frame in frames:
            msg = json.loads(frame.raw)
            if all(pred(msg) for pred in preds):
                return frame
        raise LookupError("no recorded frame matches")

    return find


@pytest.fixture
def metrics() -> ProducerMetrics:
    """Metrics on a private registry, so counts start at zero in every test."""
    return ProducerMetrics(CollectorRegistry())


@pytest.fixture
def sink() -> ListSink:
    return ListSink()
