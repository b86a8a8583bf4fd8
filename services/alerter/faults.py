"""Kill points for the crash tests: the alerter SIGKILLs itself at a named step, on purpose.

``ALERTER_FAULT_KILL_AT=<step>[:<n>]`` (read once, when the service starts; not an ``ARB_``
setting, no user sets it) kills the process the ``n``-th time (default 1) it reaches
``step``, so a test can crash it exactly between two effects instead of at a random moment.
Unset, every point is a no-op. Steps, in the order one message reaches them:

- ``before_send``: stored, nothing marked, no request made;
- ``sending_marked``: marked "sending" in the store, the request not yet sent;
- ``after_send``: Discord answered 2xx, the outcome not yet stored;
- ``after_store``: the outcome stored, the Kafka offset not yet committed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

KILL_ENV = "ALERTER_FAULT_KILL_AT"
BEFORE_SEND = "before_send"
SENDING_MARKED = "sending_marked"
AFTER_SEND = "after_send"
AFTER_STORE = "after_store"
STEPS = (BEFORE_SEND, SENDING_MARKED, AFTER_SEND, AFTER_STORE)


class KillPoints:
    """Counts arrivals at one step and SIGKILLs the process at the chosen one."""

    def __init__(self, spec: str | None = None) -> None:
        self.step: str | None = None
        self.nth = 1
        self._seen = 0
        if spec:
            step, _, nth = spec.partition(":")
            if step not in STEPS or (nth and not nth.isdigit()):
                raise ValueError(f"{KILL_ENV} must be one of {STEPS}, optionally ':<n>'")
            self.step, self.nth = step, int(nth or 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> KillPoints:
        return cls(env.get(KILL_ENV))

    def reach(self, step: str) -> None:
        """Called at each step; kills the process when it is the chosen arrival."""
        if step != self.step:
            return
        self._seen += 1
        if self._seen == self.nth:
            log.warning("fault_kill", step=step, nth=self.nth)
            os.kill(os.getpid(), signal.SIGKILL)
