"""Short opportunities end to end, as a user meets them: mock Coinbase and Binance exchanges in
their real wire formats, the real ``arb start``, a Discord stand-in. Every shock of 200-500 ms
must reach Discord as an opened episode, with no false alert; the test prints how many the
window path found on the same run and how long each took from the opening quote leaving the
mock exchange to the message arriving (bench/bench_tick_e2e.py measures that over more shocks;
timing is not asserted here: the machines are shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.tick_stack import Shock, run_shocks, running_stack, summary, warm_up

pytestmark = pytest.mark.integration

#: Eight shocks of 200-500 ms, each way in turn.
SHOCKS = [Shock("binance" if i % 2 == 0 else "coinbase", d)
          for i, d in enumerate((0.2, 0.3, 0.4, 0.5, 0.25, 0.35, 0.45, 0.2))]


def test_every_short_shock_reaches_discord_once(tmp_path: Path, output_dir: Path) -> None:
    log = output_dir / "arb-start.log"
    with running_stack(tmp_path, log) as (exchanges, discord):
        warm_up(exchanges, discord)
        run = run_shocks(exchanges, discord, tmp_path / "alerts.db", SHOCKS)
    report = summary(run)
    print(report)
    (output_dir / "summary.txt").write_text(report + "\n")

    assert run.unmatched_openings == [], report  # no false alert
    for result in run.results:
        assert len(result.opened_ids) == 1, report  # found, and once: one episode per shock
    assert len(SHOCKS) >= 6
