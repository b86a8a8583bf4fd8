"""docker/kafka/create-topics.sh with a stand-in kafka-topics.sh that keeps topics in a folder:
creates the four topics, grows one with too few partitions, keeps one with more, and is
idempotent; compose's kafka-init healthcheck looks for the file it writes at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "docker" / "kafka" / "create-topics.sh"
TOPICS = ("crypto-prices", "arbitrage-spreads", "arbitrage-alerts", "arbitrage-episodes")

# Keeps each topic's partition count in a file; answers --list/--create/--describe/--alter with
# the arguments and output shapes of Kafka's kafka-topics.sh.
FAKE_KAFKA_TOPICS = """\
import pathlib, sys
args = sys.argv[1:]
state = pathlib.Path(__file__).resolve().parent.parent / "topics"
state.mkdir(exist_ok=True)
with open(state.parent / "calls.log", "a") as log:
    log.write(" ".join(args) + "\\n")
def opt(name):
    return args[args.index(name) + 1]
assert opt("--bootstrap-server") == "kafka:9092", args
if "--list" in args:
    print("\\n".join(p.name for p in state.iterdir()))
elif "--create" in args:
    topic = state / opt("--topic")
    if not topic.exists():
        topic.write_text(opt("--partitions"))
        print("Created topic " + topic.name + ".")
elif "--describe" in args:
    topic = state / opt("--topic")
    print("Topic: " + topic.name + "\\tTopicId: abc\\tPartitionCount: " + topic.read_text()
          + "\\tReplicationFactor: 1\\tConfigs: ")
    print("\\tTopic: " + topic.name + "\\tPartition: 0\\tLeader: 1")
elif "--alter" in args:
    (state / opt("--topic")).write_text(opt("--partitions"))
"""


@pytest.fixture
def kafka_home(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "kafka-topics.sh"
    tool.write_text(f"#!{sys.executable}\n{FAKE_KAFKA_TOPICS}")
    tool.chmod(0o755)
    return tmp_path


def run_script(kafka_home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ["PATH"], "KAFKA_HOME": str(kafka_home),
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "TOPICS_READY_FILE": str(kafka_home / "ready"), **env,
    }
    return subprocess.run(["/bin/sh", str(SCRIPT)], env=environ, capture_output=True, text=True,
                          timeout=60, check=False)


def partitions(kafka_home: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in (kafka_home / "topics").iterdir()}


def test_creates_the_four_topics(kafka_home: Path) -> None:
    result = run_script(kafka_home)
    assert result.returncode == 0, result.stderr
    assert partitions(kafka_home) == dict.fromkeys(TOPICS, 3)
    assert (kafka_home / "ready").exists()
    calls = (kafka_home / "calls.log").read_text()
    assert calls.count("--create --if-not-exists") == 4
    assert "--replication-factor 1" in calls


def test_topic_names_and_partitions_come_from_the_environment(kafka_home: Path) -> None:
    result = run_script(kafka_home, ARB_PRICES_TOPIC="prices", ARB_TOPIC_PARTITIONS="6",
                        ARB_SPREADS_TOPIC="", ARB_ALERTS_TOPIC="")
    assert result.returncode == 0, result.stderr
    assert partitions(kafka_home) == {"prices": 6, "arbitrage-spreads": 6, "arbitrage-alerts": 6,
                                      "arbitrage-episodes": 6}


def test_grows_but_never_shrinks_and_is_idempotent(kafka_home: Path) -> None:
    assert run_script(kafka_home).returncode == 0
    (kafka_home / "topics" / "crypto-prices").write_text("1")
    (kafka_home / "topics" / "arbitrage-alerts").write_text("8")
    result = run_script(kafka_home)
    assert result.returncode == 0, result.stderr
    assert partitions(kafka_home) == {"crypto-prices": 3, "arbitrage-spreads": 3,
                                      "arbitrage-alerts": 8, "arbitrage-episodes": 3}
    assert "growing crypto-prices from 1 to 3" in result.stdout
    assert "arbitrage-alerts keeps its 8 partitions" in result.stdout


@pytest.mark.parametrize("value", ["0", "three", "-1"])
def test_rejects_a_bad_partition_count(kafka_home: Path, value: str) -> None:
    result = run_script(kafka_home, ARB_TOPIC_PARTITIONS=value)
    assert result.returncode == 2
    assert "ARB_TOPIC_PARTITIONS" in result.stderr
    assert not (kafka_home / "ready").exists()
