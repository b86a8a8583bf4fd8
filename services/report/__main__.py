"""Entry point: ``python -m services.report [--fixtures-dir DIR] [--out DIR] [--shock SPEC]``.

Runs the recorded data in DIR (the fixtures format: one JSON object per line with
``exchange``, ``recv_ts_ns`` and the raw WebSocket frame) through a private broker, the
producer's replay at maximum speed and the Flink job, then writes ``report.html`` (charts
inline, opens offline) and ``episodes.csv`` to the output folder. Detection settings come from
the environment as for the live job (``DEMO_MODE``, ``ARB_MIN_SPREAD_USD``,
``ARB_EPISODE_GAP_MS``, ``ARB_EXECUTION_MS`` ...). Exit codes: 0 done, 1 a step failed,
2 invalid configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from services.common.config import load_dotenv
from services.common.exceptions import ArbError, ConfigError
from services.common.logging import configure_logging
from services.producer.replay import default_fixtures_dir
from services.report.pipeline import ReportOptions, run_pipeline
from services.report.progress import Progress
from services.report.render import episodes_csv, render_html


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="arb report",
        description="Replay recorded exchange data through the pipeline at maximum speed and "
                    "write an HTML report with charts and a CSV of opportunity episodes.",
    )
    parser.add_argument("--fixtures-dir", type=Path, default=None,
                        help="recorded data in the fixtures format (default ARB_FIXTURES_DIR "
                             "or ../shared/fixtures/exchanges)")
    parser.add_argument("--out", type=Path, default=Path("report"),
                        help="output folder for report.html, episodes.csv and logs/ "
                             "(default ./report)")
    parser.add_argument("--shock", action="append", default=[], metavar="SPEC",
                        help="price shock for the replay, EXCHANGE:SYMBOL:DELTA_USD@START_S:"
                             "DURATION_S (repeatable)")
    parser.add_argument("--demo", action="store_true",
                        help="DEMO_MODE=TRUE: the $0.10 threshold, so replayed noise alerts")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_dotenv()
    if args.demo:
        os.environ["DEMO_MODE"] = "TRUE"
    configure_logging("report", level="WARNING")
    fixtures = (args.fixtures_dir or default_fixtures_dir()).resolve()
    if not fixtures.is_dir():
        print(f"arb report: {fixtures} is not a folder", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = ReportOptions(fixtures_dir=fixtures, out_dir=out, shocks=tuple(args.shock))
    try:
        data = run_pipeline(options, Progress())
    except ConfigError as exc:
        print(f"arb report: {exc}", file=sys.stderr)
        return 2
    except ArbError as exc:
        print(f"arb report: {exc}", file=sys.stderr)
        return 1
    (out / "episodes.csv").write_text(episodes_csv(data.episodes))
    (out / "report.html").write_text(render_html(data))
    print(f"{out / 'report.html'}\n{out / 'episodes.csv'}")
    print(f"{len(data.episodes)} episodes, {len(data.capturable)} capturable", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
