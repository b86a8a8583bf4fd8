"""Capped exponential backoff with jitter, shared by the feeds' reconnects and Discord retries."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff; jitter spreads retries so peers are not hit in step."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    #: fraction of the delay that is randomised away (0 = none, 1 = anywhere in [0, delay])
    jitter: float = 0.5

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry ``attempt`` (0 = the first retry)."""
        base_s = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        return base_s * (1.0 - self.jitter * rand())
