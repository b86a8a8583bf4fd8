"""The report's pure parts: charts, page and CSV from hand-built data; the progress bar."""

from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import replace

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
from services.report.render import (
    CSV_COLUMNS,
    ReportData,
    depth_line,
    depth_summary,
    episodes_csv,
    render_html,
)
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


def at_depth(spread: Spread, notional_usd: float, profit_usd: float) -> Spread:
    return replace(spread, executable_usd=notional_usd,
                   executable_size=notional_usd / spread.buy_ask,
                   executable_profit_usd=profit_usd)


def test_depth_summary_counts_alerts_with_an_executable_size_and_their_median() -> None:
    report = data()
    sizes = [(1000.0, 0.5), (10_000.0, 6.0), (100_000.0, 40.0)]
    report.alerts = [at_depth(a, usd, profit) for a, (usd, profit) in
                     zip(report.alerts, sizes, strict=False)] + report.alerts[len(sizes):]

    summary = depth_summary(report.alerts)
    page = render_html(report)

    assert (summary.alerts, summary.executable) == (len(report.alerts), len(sizes))
    assert summary.median_usd == statistics.median(usd for usd, _ in sizes)
    assert summary.median_profit_usd == statistics.median(p for _, p in sizes)
    line = depth_line(summary)
    assert line.startswith(f"{len(sizes)} of {len(report.alerts)} alert windows had an executable")
    assert "median $10,000, median est. profit $6.00 after fees (total $46.50)" in line
    assert line in page
    # The alert table lists the sized alerts, the largest profit first, in USD and the base.
    table = page.split('<table class="alerts">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == len(sizes) + 1
    assert table.index("$100,000") < table.index("$10,000") < table.index("$1,000<")
    assert f"<td>{10_000.0 / report.alerts[1].buy_ask:.4g} BTC</td>" in table


def test_depth_summary_says_when_no_alert_could_be_sized() -> None:
    report = data()

    page = render_html(report)

    assert depth_summary(report.alerts).executable == 0
    assert '<table class="alerts">' not in page
    assert f"None of the {len(report.alerts)} alert windows had an executable size" in page
    assert depth_line(depth_summary([])).startswith("No alert windows")


def test_episode_table_and_csv_carry_the_executable_size() -> None:
    report = data()
    sized = replace(report.episodes[0], executable_usd=10_000.0, executable_size=99.5,
                    executable_profit_usd=-1.25)
    report.episodes = [sized, *report.episodes[1:]]

    rows = list(csv.DictReader(io.StringIO(episodes_csv(report.episodes))))
    page = render_html(report)

    by_id = {r["id"]: r for r in rows}
    assert (by_id[sized.id]["executable_usd"], by_id[sized.id]["executable_size"],
            by_id[sized.id]["executable_profit_usd"]) == ("10000.00", "99.5", "-1.25")
    assert {r["executable_usd"] for r in rows if r["id"] != sized.id} == {""}
    table = page.split('<table class="episodes">', 1)[1]
    assert "<td>$10,000</td><td>99.5 BTC</td><td>-$1.25</td>" in table


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
