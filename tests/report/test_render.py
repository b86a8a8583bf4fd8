"""The report's pure parts: charts, page and CSV from hand-built data; the progress bar."""

from __future__ import annotations

import csv
import io
import re

from services.common.messages import Spread, spread_id
from services.report.charts import (
    Group,
    Series,
    bar_chart,
    bin_counts,
    histogram,
    line_chart,
    nice_ticks,
)
from services.report.progress import Progress
from services.report.render import CSV_COLUMNS, ReportData, episodes_csv, render_html
from tests.common.test_episodes import SETTINGS, T0, episodes, quote


def alert(window: int, net_bps: float, *, buy: str = "coinbase",
          sell: str = "binance") -> Spread:
    """A window-path alert of window ``window`` (1 s windows from T0)."""
    end = T0 + (window + 1) * 1000
    return Spread(
        id=spread_id("BTC-USD", end, buy, sell), symbol="BTC-USD", window_start_ms=end - 1000,
        window_end_ms=end, buy_exchange=buy, buy_ask=100.0, buy_size=1.0, sell_exchange=sell,
        sell_bid=101.0, sell_size=1.0, spread_usd=net_bps / 10, spread_bps=net_bps + 70,
        net_spread_bps=net_bps, max_size=1.0, est_profit_usd=1.0, quote_age_ms=100,
        newest_recv_ts_ms=end - 50,
    )


def data() -> ReportData:
    alerts = [alert(1, 5.0), alert(2, 9.0), alert(3, 4.0),
              alert(4, 3.0, buy="binance", sell="coinbase")]
    spreads = alerts + [alert(w, -50.0) for w in (5, 6, 7)]
    # four episodes (1 s stale, 200 ms gap): 1.2-2 s (Coinbase's 1 s quote then goes stale),
    # 2.8-3 s, 3.3-3.4 s the other way, 9-9.2 s without sizes
    ticks = [quote("coinbase", 1000), quote("binance", 1100),
             quote("binance", 1200, 106.0), quote("binance", 2000, 104.0),
             quote("coinbase", 2800), quote("binance", 3500, 100.0),
             quote("coinbase", 3300, 106.0), quote("coinbase", 3400, 100.0),
             quote("coinbase", 8900, size=None), quote("binance", 9000, 106.0, size=None),
             quote("binance", 9200, 100.0, size=None)]
    return ReportData(
        source="fixtures", settings=SETTINGS, prices=1234, first_ts_ms=T0, last_ts_ms=T0 + 12_000,
        spreads=spreads, alerts=alerts, episodes=episodes(ticks), generated_ts_ms=T0,
    )


def test_nice_ticks_and_bins() -> None:
    assert nice_ticks(0, 9.3) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(-66, -31) == [-70, -60, -50, -40, -30]
    assert bin_counts([0, 0.5, 1, 2, 2.0], [0, 1, 2]) == [2, 3]  # last bin holds its edge


def test_charts_draw_every_series_and_say_when_empty() -> None:
    line = line_chart("l", "Line", [Series("a", [(0, 1), (1, 2)]), Series("b", [(0, -1)])],
                      x_label="s", y_label="bps")
    hist = histogram("h", "Hist", [Group("x", [1, 2, 2])], [0, 1, 2, 3], x_label="v")
    bars = bar_chart("b", "Bars", ["p", "q"], [Group("g", [1.5, -2.0])], x_label="USD")

    assert line.count('class="series"') == 2 and 'data-plot="l"' in line
    assert len(re.findall(r'class="bar"', hist)) == 2  # two non-empty bins
    assert len(re.findall(r'class="bar"', bars)) == 2
    assert "no-data" in line_chart("e", "Empty", [], x_label="", y_label="", empty="nothing")


def test_page_is_self_contained_with_all_plots() -> None:
    page = render_html(data())

    plots = set(re.findall(r'data-plot="([^"]+)"', page))
    assert plots == {"spread-0", "durations", "net-bps", "profit"}
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count('class="band"') == 4  # the four episodes shaded on the spread chart
    assert "BTC-USD coinbase\u2192binance" in page


def test_csv_has_one_row_per_episode() -> None:
    report = data()

    rows = list(csv.DictReader(io.StringIO(episodes_csv(report.episodes))))

    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(report.episodes) == 4
    first = rows[0]
    assert (first["quotes"], first["duration_ms"]) == ("2", "800")
    assert first["start_utc"] == "2023-11-14 22:13:21.200"
    assert rows[-1]["peak_est_profit_usd"] == ""  # unknown size: no profit


def test_progress_bar_in_a_log_prints_a_few_lines() -> None:
    out = io.StringIO()
    bar = Progress(out, width=10, tty=False)

    bar.phase("replay", total=100)
    for done in range(0, 101, 5):
        bar.update(done)
    bar.finish(detail="done")

    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 7
    assert lines[-1].startswith("replay   [##########] 100.0%") and lines[-1].endswith("done")


def test_progress_bar_on_a_terminal_redraws_in_place() -> None:
    out = io.StringIO()
    bar = Progress(out, width=4, tty=True)

    bar.phase("detect")
    bar.update(7)
    bar.finish()

    assert out.getvalue().count("\r") == 3 and out.getvalue().endswith("\n")
    assert "[????] 7" in out.getvalue()
