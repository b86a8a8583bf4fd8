"""``arb report`` on the recorded fixtures: real broker, producer replay at maximum speed and the
Flink job, then the HTML opened in headless Chromium and the CSV read back."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.support.browser import Browser, chromium_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                       reason="chromium is not installed (make test installs it)"),
]

# Binance BTC-USD $800 up for 5 s: buying Coinbase and selling Binance pays even after 70 bps
# of fees for the whole shock, so there is a 5 s episode to report.
SHOCK = "binance:BTC-USD:+800@10:5"
PLOTS = ("spread-0", "durations", "net-bps", "profit")


def run_report(fixtures_dir: Path, out: Path, log: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "KAFKA_"))}
    env.pop("DEMO_MODE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "report", "--fixtures-dir", str(fixtures_dir),
         "--out", str(out), "--shock", SHOCK],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    log.write_text(proc.stdout + proc.stderr)
    return proc


def test_report_on_recorded_fixtures(fixtures_dir: Path, tmp_path: Path,
                                     output_dir: Path) -> None:
    out = tmp_path / "report"

    proc = run_report(fixtures_dir, out, output_dir / "report.log")

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out / "report.html"), str(out / "episodes.csv")]
    assert "replay   [##############################] 100.0%" in proc.stderr  # progress bar
    assert "detect   [##############################] 100.0%" in proc.stderr
    with open(out / "episodes.csv", newline="") as fh:
        episodes = list(csv.DictReader(fh))
    shocked = [e for e in episodes if (e["buy_exchange"], e["sell_exchange"]) ==
               ("coinbase", "binance")]
    assert shocked, f"the shock made no episode: {episodes}"
    longest = max(shocked, key=lambda e: int(e["duration_ms"]))
    assert 4000 <= int(longest["duration_ms"]) <= 6000, longest
    assert int(longest["quotes"]) > 10
    assert all(e["closed"] == "true" for e in episodes)
    assert all(float(e["peak_net_spread_bps"]) >= float(e["mean_net_spread_bps"]) - 1e-6
               for e in episodes)

    with Browser(width=1100, height=3600) as browser:
        browser.goto((out / "report.html").as_uri())
        browser.wait_for_text("Arbitrage replay report")
        plots = browser.evaluate(
            "Array.from(document.querySelectorAll('svg.plot')).map(svg => ({"
            " id: svg.dataset.plot,"
            " width: svg.getBoundingClientRect().width,"
            " height: svg.getBoundingClientRect().height,"
            " marks: svg.querySelectorAll('polyline.series, rect.bar').length,"
            " empty: svg.querySelectorAll('.no-data').length}))",
        )
        text = browser.text()
        # Nothing outside the file: no script, no stylesheet or image to fetch.
        external = browser.evaluate(
            "document.querySelectorAll('script, link[rel=stylesheet], img, iframe').length",
        )
        browser.screenshot(output_dir / "report.png")

    by_id = {p["id"]: p for p in plots}
    assert set(PLOTS) <= set(by_id), plots
    for plot_id in PLOTS:
        plot = by_id[plot_id]
        assert plot["width"] > 300 and plot["height"] > 100, plot
        assert plot["marks"] > 0 and plot["empty"] == 0, plot
    assert external == 0
    for heading in ("Spread per venue pair over time", "Episode durations",
                    "Net spread distribution", "Profit by venue pair", "Episodes"):
        assert heading in text
    assert f"{len(episodes)}\nepisodes" in text
