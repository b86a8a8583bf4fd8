"""Every entry point refuses bad settings the same way: exit code 2 and one line naming the
variable, no traceback, before any work starts (the Flink job included)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

#: Each entry point, and a variable it reads.
ENTRY_POINTS = {
    "flink job": (["-m", "flink.job"], "ARB_STALE_MS"),
    "producer": (["-m", "services.producer", "live"], "ARB_STALE_MS"),
    "alerter": (["-m", "services.alerter"], "ARB_DISCORD_MAX_ATTEMPTS"),
    "dashboard": (["-m", "services.dashboard"], "ARB_DASHBOARD_MAX_ROWS"),
    "arb start": (["-m", "services.cli", "start", "--no-broker"], "ARB_TOPIC_PARTITIONS"),
}


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("ARB_", "KAFKA_", "DISCORD_", "DEMO_"))}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_bad_value_exits_2_naming_the_variable(name: str) -> None:
    argv, variable = ENTRY_POINTS[name]
    result = run(argv, **{variable: "soon"})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{variable}='soon' is invalid" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_misspelt_variable_exits_2_with_did_you_mean(name: str) -> None:
    result = run(ENTRY_POINTS[name][0], ARB_STALE_M="500")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "ARB_STALE_M is not a setting; did you mean ARB_STALE_MS?" in output
    assert "Traceback" not in output
