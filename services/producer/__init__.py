"""Producer: venue WebSockets (or recorded frames) -> quote/trade records -> Kafka crypto-prices."""

from services.common.backoff import Backoff
from services.producer.connector import Parsed, Venue, fx_to_usd_for
from services.producer.feed import Feed, FeedOptions, FrameTap, run_feeds
from services.producer.fx import FxRates
from services.producer.metrics import FeedMetrics, ProducerMetrics
from services.producer.processor import FrameProcessor, Outcome
from services.producer.publisher import KafkaPublisher
from services.producer.quote_book import QuoteBook
from services.producer.recorder import FrameRecorder
from services.producer.replay import (
    DEFAULT_RECORDINGS,
    FeedEvent,
    Recording,
    ReplayPlan,
    Shock,
    build_replay,
    iter_replay,
    plan_replay,
    publish_replay,
)
from services.producer.sequence import SequenceTracker
from services.producer.venues import VENUES, get_venue

__all__ = [
    "DEFAULT_RECORDINGS",
    "VENUES",
    "Backoff",
    "Feed",
    "FeedEvent",
    "FeedMetrics",
    "FeedOptions",
    "FrameProcessor",
    "FrameRecorder",
    "FrameTap",
    "FxRates",
    "KafkaPublisher",
    "Outcome",
    "Parsed",
    "ProducerMetrics",
    "QuoteBook",
    "Recording",
    "ReplayPlan",
    "SequenceTracker",
    "Shock",
    "Venue",
    "build_replay",
    "fx_to_usd_for",
    "get_venue",
    "iter_replay",
    "plan_replay",
    "publish_replay",
    "run_feeds",
]
