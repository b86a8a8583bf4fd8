"""Alerter: arbitrage-alerts -> durable history -> Discord webhook, offsets committed last."""

from services.alerter.discord import (
    DeliveryResult,
    DiscordWebhook,
    build_embed,
    build_payload,
    headline,
)
from services.alerter.metrics import AlerterMetrics
from services.alerter.service import AlerterService, AlertHandler, Outcome

__all__ = [
    "AlertHandler",
    "AlerterMetrics",
    "AlerterService",
    "DeliveryResult",
    "DiscordWebhook",
    "Outcome",
    "build_embed",
    "build_payload",
    "headline",
]
