"""The alerter SIGKILLed at each of its steps, in each delivery mode, then restarted.

A real Tansu broker, the alerter as a child process (``python -m services.alerter``; the
at-most-once runs call the same ``main`` with that mode) and the Discord stand-in. The first run
kills itself at the third alert reaching the step (services/alerter/faults.py: an exact point,
not a race); the second run finishes the batch. Then the ids Discord accepted, as a Counter,
are compared with the ids produced: nothing lost and nothing doubled, except where it cannot be
avoided, and there the test asserts that ``arb_alerts_uncertain_total`` equals what happened.

| killed at      | at_least_once           | at_most_once            |
|----------------|-------------------------|-------------------------|
| before_send    | exact                   | exact                   |
| sending_marked | exact, 1 uncertain      | 1 lost, 1 uncertain     |
| after_send     | 1 doubled, 1 uncertain  | exact, 1 uncertain      |
| after_store    | exact                   | exact                   |
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.alerter.faults import (
    AFTER_SEND,
    AFTER_STORE,
    BEFORE_SEND,
    KILL_ENV,
    SENDING_MARKED,
)
from services.alerter.service import AT_LEAST_ONCE, AT_MOST_ONCE
from services.common.broker import free_port
from services.common.history import PENDING, read_counts
from services.common.messages import to_json
from tests.alerter.conftest import Topics, discord, topics  # noqa: F401 - fixtures
from tests.alerter.test_main import alerter_env
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.discord_standin import DiscordStandIn
from tests.support.waiting import http_body, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ALERTS = 6
#: The alert (1-based) at whose step the first run dies.
KILLED_AT = 3

#: (step, mode) -> (lost, doubled, uncertain): what each case must show, and nothing else.
EXPECTED = {
    (BEFORE_SEND, AT_LEAST_ONCE): (0, 0, 0),
    (BEFORE_SEND, AT_MOST_ONCE): (0, 0, 0),
    (SENDING_MARKED, AT_LEAST_ONCE): (0, 0, 1),
    (SENDING_MARKED, AT_MOST_ONCE): (1, 0, 1),
    (AFTER_SEND, AT_LEAST_ONCE): (0, 1, 1),
    (AFTER_SEND, AT_MOST_ONCE): (0, 0, 1),
    (AFTER_STORE, AT_LEAST_ONCE): (0, 0, 0),
    (AFTER_STORE, AT_MOST_ONCE): (0, 0, 0),
}


def start(env: dict[str, str], delivery: str, log_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """The entry point in a child process; the default mode through ``-m`` itself."""
    if delivery == AT_LEAST_ONCE:
        command = [sys.executable, "-m", "services.alerter"]
    else:
        command = [sys.executable, "-c", "import sys; from services.alerter.__main__ import main; "
                   f"sys.exit(main(delivery={delivery!r}))"]
    with open(log_file, "ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def uncertain_total(metrics_url: str) -> float:
    families = text_string_to_metric_families(http_body(metrics_url).decode())
    return sum(s.value for f in families if f.name == "arb_alerts_uncertain"
               for s in f.samples if s.name == "arb_alerts_uncertain_total")


@pytest.mark.parametrize(("step", "delivery"), list(EXPECTED))
def test_killed_at_a_step_then_restarted(
    topics: Topics, discord: DiscordStandIn,  # noqa: F811 - fixtures
    tmp_path: Path, unique: str, output_dir: Path, step: str, delivery: str,
) -> None:
    produced = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(ALERTS)]
    topic = topics.kafka.alerts_topic
    topics.produce(topic, [to_json(a) for a in produced])
    port = free_port()
    env = alerter_env(topics, tmp_path, unique, discord.url, ARB_ALERT_COOLDOWN_SECONDS="0",
                      ARB_ALERTER_METRICS_PORT=str(port))
    log_file = output_dir / "alerter.log"
    log_file.unlink(missing_ok=True)
    db = tmp_path / "alerts.db"
    group = env["ARB_ALERTER_GROUP_ID"]

    first = start({**env, KILL_ENV: f"{step}:{KILLED_AT}"}, delivery, log_file, tmp_path)
    try:
        assert first.wait(timeout=90) == -9, "the first run should have killed itself"
    finally:
        if first.poll() is None:
            first.kill()
    assert topics.committed_offset(group, topic) < ALERTS

    second = start(env, delivery, log_file, tmp_path)
    try:
        wait_until(lambda: topics.committed_offset(group, topic) == ALERTS, 90,
                   "every offset committed")
        assert read_counts(db)[PENDING] == 0
        uncertain = uncertain_total(f"http://127.0.0.1:{port}/metrics")
        second.terminate()
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            second.kill()

    received = Counter(discord.accepted_alert_ids)
    wanted = Counter(a.id for a in produced)
    lost = sum((wanted - received).values())
    doubled = sum((received - wanted).values())
    assert set(received) <= set(wanted)
    assert (lost, doubled, uncertain) == EXPECTED[(step, delivery)], (received, wanted)
    in_doubt = produced[KILLED_AT - 1].id
    if lost or doubled:  # and it is the one in flight at the kill, nothing else
        assert (wanted - received) + (received - wanted) == Counter({in_doubt: 1})
    events = [json.loads(line) for line in log_file.read_text().splitlines()
              if line.startswith("{")]
    logged = [e["id"] for e in events if e["event"] == "delivery_uncertain"]
    assert logged == [in_doubt] * int(uncertain)
