"""End-to-end tick latency: a mock exchange sends the opening quote -> the Discord stand-in
receives the opened message, through the real ``arb start``.

Real parts throughout: mock Coinbase and Binance WebSocket servers in their wire formats, the
producer, Tansu, the Flink job in a MiniCluster, the alerter posting over HTTP to a local
stand-in for Discord. Shocks of 200-500 ms, each way in turn, 3 s apart, on BTC-USD; the window
path's alerts on the same run are counted beside. Prints numbers; asserts nothing.

  python bench/bench_tick_e2e.py --shocks 40 --runs 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.tick_stack import (  # noqa: E402
    Shock,
    pct,
    run_shocks,
    running_stack,
    summary,
    warm_up,
)

DURATIONS_S = (0.2, 0.3, 0.4, 0.5, 0.25, 0.35, 0.45)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shocks", type=int, default=40, help="shocks per run")
    parser.add_argument("--runs", type=int, default=1, help="fresh stacks, one after another")
    args = parser.parse_args()
    shocks = [Shock("binance" if i % 2 == 0 else "coinbase", DURATIONS_S[i % len(DURATIONS_S)])
              for i in range(args.shocks)]
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    p99s = []
    for run_index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-tick-e2e-") as tmp:
            log = Path(tmp) / "arb-start.log"
            with running_stack(Path(tmp), log) as (exchanges, discord):
                warm_up(exchanges, discord)
                run = run_shocks(exchanges, discord, Path(tmp) / "alerts.db", shocks)
        print(f"\n== run {run_index + 1} ==")
        print(summary(run))
        latencies = [r.latency_s for r in run.results if r.latency_s is not None]
        if latencies:
            p99s.append(pct(latencies, 99))
    if p99s:
        print(f"\np99 over runs: {min(p99s) * 1000:.0f}-{max(p99s) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
