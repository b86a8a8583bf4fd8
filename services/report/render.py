"""The report as files: a self-contained HTML page (inline SVG, inline CSS, no script) and a
CSV of episodes. Pure functions of :class:`ReportData`; no Kafka, no Flink here."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from services.common.config import DetectionSettings
from services.common.messages import Episode, Spread
from services.report.charts import (
    BAD,
    GOOD,
    MUTED,
    PALETTE,
    Band,
    Group,
    Series,
    bar_chart,
    even_edges,
    histogram,
    line_chart,
)

#: Most points drawn per line; longer series keep each bucket's largest value (spikes stay).
MAX_POINTS = 2000
#: Rows of the episode table in the page (the CSV has them all).
MAX_TABLE_ROWS = 100

CSV_COLUMNS = (
    "id", "symbol", "buy_exchange", "sell_exchange", "start_utc", "end_utc", "start_ms",
    "end_ms", "duration_ms", "quotes", "peak_net_spread_bps",
    "mean_net_spread_bps", "peak_spread_usd", "peak_est_profit_usd", "required_ms",
    "capturable", "closed", "executable_usd", "executable_size", "executable_profit_usd",
)


@dataclass(frozen=True)
class LatencyUsed:
    """The feed latency a venue's episodes were judged with, and where it came from."""

    venue: str
    p99_ms: float
    source: str  # "measured" (from the replayed records) or "configured" (ARB_FEED_LATENCY_MS)
    raw_p99_ms: float | None = None  # measured value before clamping at 0 (clock skew)


@dataclass
class ReportData:
    """Everything one report shows: what went in, the settings, and what came out."""

    source: str
    settings: DetectionSettings
    prices: int
    first_ts_ms: int
    last_ts_ms: int
    spreads: list[Spread]
    alerts: list[Spread]
    episodes: list[Episode]
    latencies: list[LatencyUsed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_ts_ms: int = 0
    elapsed_s: dict[str, float] = field(default_factory=dict)

    @property
    def capturable(self) -> list[Episode]:
        return [e for e in self.episodes if e.capturable]


def utc(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts_ms % 1000:03d}"


def pair_label(symbol: str, buy: str, sell: str) -> str:
    return f"{symbol} {buy}\u2192{sell}"


def episodes_csv(episodes: Sequence[Episode]) -> str:
    """One row per episode in start order; times also as UTC text for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in sorted(episodes, key=lambda e: (e.start_ms, e.direction)):
        writer.writerow([
            e.id, e.symbol, e.buy_exchange, e.sell_exchange, utc(e.start_ms), utc(e.end_ms),
            e.start_ms, e.end_ms, e.duration_ms, e.quotes,
            f"{e.peak_net_spread_bps:.4f}", f"{e.mean_net_spread_bps:.4f}",
            f"{e.peak_spread_usd:.6g}",
            "" if e.peak_est_profit_usd is None else f"{e.peak_est_profit_usd:.2f}",
            e.required_ms, str(e.capturable).lower(), str(not e.is_open).lower(),
            _csv_number(e.executable_usd, ".2f"), _csv_number(e.executable_size, ".8g"),
            _csv_number(e.executable_profit_usd, ".2f"),
        ])
    return out.getvalue()


def _csv_number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


@dataclass(frozen=True)
class DepthSummary:
    """How many alert windows the books could fill at some ladder size, and how much."""

    alerts: int
    executable: int
    median_usd: float | None
    median_profit_usd: float | None
    total_profit_usd: float


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def depth_summary(alerts: Sequence[Spread]) -> DepthSummary:
    """Over the alert windows: those with an executable size, their median size and profit."""
    sized = [a for a in alerts if a.executable_usd is not None]
    profits = [a.executable_profit_usd for a in sized if a.executable_profit_usd is not None]
    return DepthSummary(
        alerts=len(alerts), executable=len(sized),
        median_usd=_median([a.executable_usd for a in sized if a.executable_usd is not None]),
        median_profit_usd=_median(profits), total_profit_usd=sum(profits),
    )


def depth_line(summary: DepthSummary) -> str:
    """The report's one sentence on depth (plain text)."""
    if summary.alerts == 0:
        return "No alert windows, so nothing to size against the order books."
    if summary.executable == 0:
        return (f"None of the {summary.alerts:,} alert windows had an executable size: no "
                "ladder size passed the alert rule at both books' depth, or the venues sent no "
                "depth (top of book only).")
    return (f"{summary.executable:,} of {summary.alerts:,} alert windows had an executable "
            f"size; median {_size_usd(summary.median_usd)}, median est. profit "
            f"{_money(summary.median_profit_usd)} after fees "
            f"(total {_money(summary.total_profit_usd)}).")


def _size_usd(value: float | None) -> str:
    """A ladder notional: whole dollars ($10,000) for round sizes."""
    if value is None:
        return "n/a"
    return f"${value:,.0f}" if value == round(value) else f"${value:,.2f}"


def _base_amount(value: float | None, symbol: str) -> str:
    if value is None:
        return "n/a"
    amount = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{amount} {symbol.split('-', 1)[0]}"


def _executable_cells(symbol: str, usd: float | None, size: float | None,
                      profit_usd: float | None) -> list[str]:
    """Executable size in USD and base asset, and its profit; escaped HTML cells."""
    return [escape(_size_usd(usd)), escape(_base_amount(size, symbol)),
            escape(_money(profit_usd))]


def _thin(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return points
    points = sorted(points)
    size = -(-len(points) // limit)
    return [max(points[i:i + size], key=lambda p: p[1]) for i in range(0, len(points), size)]


def spread_charts(data: ReportData) -> list[str]:
    """Per symbol: net spread of every ordered venue pair over time, episodes shaded."""
    origin = data.first_ts_ms
    by_symbol: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for s in data.spreads:
        by_symbol[s.symbol][(s.buy_exchange, s.sell_exchange)].append(
            ((s.window_end_ms - origin) / 1000, s.net_spread_bps))
    charts = []
    for index, symbol in enumerate(sorted(by_symbol)):
        pairs = by_symbol[symbol]
        series = [Series(f"{buy}\u2192{sell}", _thin(points), PALETTE[i % len(PALETTE)])
                  for i, ((buy, sell), points) in enumerate(sorted(pairs.items()))]
        bands = [
            Band((e.start_ms - origin) / 1000, (e.end_ms - origin) / 1000,
                 f"episode {e.buy_exchange}\u2192{e.sell_exchange}: {e.duration_ms:,} ms, "
                 f"peak {e.peak_net_spread_bps:+.1f} bps, "
                 f"{'capturable' if e.capturable else 'not capturable'}",
                 GOOD if e.capturable else BAD)
            for e in data.episodes if e.symbol == symbol
        ]
        charts.append(line_chart(
            f"spread-{index}", f"{symbol}: net spread per venue pair (shaded: episodes)",
            series, bands=bands, x_label="seconds since the first record",
            y_label="net spread (bps)",
        ))
    if not charts:
        charts.append(line_chart("spread-0", "Net spread per venue pair", [],
                                 x_label="", y_label="", empty="no spreads: no window had "
                                 "quotes of two venues"))
    return charts


#: Bin widths (ms) the duration histogram picks from: tick episodes last from a few ms to minutes.
DURATION_BIN_MS = (10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
MAX_DURATION_BINS = 20


def duration_chart(data: ReportData) -> str:
    top = max((e.duration_ms for e in data.episodes), default=0)
    width = next((w for w in DURATION_BIN_MS if top / w < MAX_DURATION_BINS),
                 DURATION_BIN_MS[-1])
    edges = [float(i * width) for i in range(int(top // width) + 2)]
    groups = [
        Group("capturable", [float(e.duration_ms) for e in data.episodes if e.capturable], GOOD),
        Group("not capturable",
              [float(e.duration_ms) for e in data.episodes if not e.capturable], BAD),
    ]
    return histogram("durations", "Episode durations", groups,
                     edges, x_label="duration (ms)", y_label="episodes",
                     empty="no episodes: no quote passed the thresholds")


def net_bps_chart(data: ReportData) -> str:
    values = [s.net_spread_bps for s in data.spreads]
    if not values:
        return histogram("net-bps", "Net spread distribution", [], [], x_label="")
    edges = even_edges(values, 40)
    groups = [Group("every window and pair", values, MUTED),
              Group("alerts", [s.net_spread_bps for s in data.alerts], PALETTE[0])]
    return histogram("net-bps", "Net spread distribution (after taker fees)", groups, edges,
                     x_label="net spread (bps)", y_label="window x pair", stacked=False)


def profit_chart(data: ReportData) -> str:
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in data.episodes:
        profit = e.peak_est_profit_usd or 0.0
        label = pair_label(e.symbol, e.buy_exchange, e.sell_exchange)
        totals[label][0] += profit
        if e.capturable:
            totals[label][1] += profit
    labels = sorted(totals, key=lambda k: -totals[k][0])
    groups = [Group("all episodes", [totals[k][0] for k in labels], MUTED),
              Group("capturable", [totals[k][1] for k in labels], GOOD)]
    return bar_chart("profit", "Estimated profit by venue pair (sum of episode peaks, USD)",
                     labels, groups, x_label="USD", empty="no episodes")


def _table(rows: Sequence[Sequence[str]], header: Sequence[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


#: Rows of the alert table in the page, largest executable profit first.
MAX_ALERT_ROWS = 50


def alert_depth_table(alerts: Sequence[Spread]) -> str:
    """The alert windows with an executable size, largest executable profit first."""
    sized = sorted((a for a in alerts if a.executable_usd is not None),
                   key=lambda a: (-(a.executable_profit_usd or 0.0), a.window_end_ms, a.id))
    rows = [[
        escape(utc(a.window_end_ms)), escape(pair_label(a.symbol, a.buy_exchange, a.sell_exchange)),
        f"{a.net_spread_bps:+.1f}", escape(_money(a.est_profit_usd)),
        *_executable_cells(a.symbol, a.executable_usd, a.executable_size,
                           a.executable_profit_usd),
    ] for a in sized[:MAX_ALERT_ROWS]]
    if not rows:
        return ""
    return _table(rows, ["window end (UTC)", "pair", "net bps (top)", "est. profit (top)",
                         "executable", "executable size", "est. profit at depth"], "alerts")


def _settings_rows(data: ReportData) -> list[list[str]]:
    s = data.settings
    fees = ", ".join(f"{escape(v)} {bps:g}" for v, bps in sorted(s.taker_fee_bps.items()))
    rows = [
        ["detection mode", escape(s.mode)],
        ["window / watermark", f"{s.window_ms} ms / {s.watermark_ms} ms"],
        ["alert threshold", f"spread &ge; ${s.min_spread_usd:g}"
         + ("" if s.min_net_bps is None else f", net &ge; {s.min_net_bps:g} bps")
         + f", below {s.max_spread_bps:g} bps"],
        ["taker fees (bps)", fees],
        ["episode gap / stale after", f"{s.episode_gap_ms} ms / {s.stale_ms} ms"],
        ["execution time", f"{s.execution_ms} ms"],
    ]
    for lat in data.latencies:
        note = "" if lat.raw_p99_ms is None or lat.raw_p99_ms >= 0 else (
            f" (measured {lat.raw_p99_ms:,.0f} ms: the recorder's clock is behind the venue's;"
            " counted as 0)")
        rows.append([f"feed latency p99, {escape(lat.venue)}",
                     f"{lat.p99_ms:,.0f} ms, {lat.source}{escape(note)}"])
    return rows


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:920px;color:#1f2933;padding:0 12px}
h1{font-size:1.6em;margin-bottom:0.2em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #e3e7eb;padding-bottom:4px}
.caveat{background:#fff8e1;border-left:4px solid #E69F00;padding:8px 12px;font-size:0.92em}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #e3e7eb;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:1.4em}.card span{color:#52606d;font-size:0.85em}
table{border-collapse:collapse;font-size:0.88em;width:100%}
th,td{border-bottom:1px solid #e3e7eb;padding:4px 6px;text-align:left}
td.num,th.num{text-align:right}
svg.plot{width:100%;height:auto;margin:8px 0;font-family:inherit}
.chart-title{font-size:13px;font-weight:600;fill:#1f2933}
.yes{color:#007a5a;font-weight:600}.no{color:#b5480b}
footer{margin-top:2em;color:#7b8794;font-size:0.85em}
"""


def render_html(data: ReportData, csv_name: str = "episodes.csv") -> str:
    """The whole report page."""
    span_s = (data.last_ts_ms - data.first_ts_ms) / 1000
    capturable = data.capturable
    cards = [
        (f"{data.prices:,}", "records replayed"),
        (f"{span_s:,.1f} s", "of data"),
        (f"{len(data.spreads):,}", "pair spreads"),
        (f"{len(data.alerts):,}", "alert windows"),
        (f"{len(data.episodes):,}", "episodes"),
        (f"{len(capturable):,}", "capturable"),
        (_money(sum(e.peak_est_profit_usd or 0 for e in capturable)),
         "capturable peak profit"),
    ]
    depth = depth_summary(data.alerts)
    cards.append((f"{depth.executable:,}", "alerts executable at depth"))
    card_html = "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                        for v, k in cards)
    top = sorted(data.episodes, key=lambda e: -(e.peak_est_profit_usd or 0))[:MAX_TABLE_ROWS]
    rows = [[
        escape(utc(e.start_ms)), escape(pair_label(e.symbol, e.buy_exchange, e.sell_exchange)),
        f"{e.duration_ms:,} ms", f"{e.quotes:,}",
        f"{e.peak_net_spread_bps:+.1f}", f"{e.mean_net_spread_bps:+.1f}",
        _money(e.peak_est_profit_usd),
        *_executable_cells(e.symbol, e.executable_usd, e.executable_size,
                           e.executable_profit_usd),
        f"{e.required_ms:,} ms",
        '<span class="yes">yes</span>' if e.capturable else '<span class="no">no</span>',
    ] for e in top]
    episode_table = _table(rows, ["start (UTC)", "pair", "duration", "passing quotes",
                                  "peak net bps", "mean net bps", "peak est. profit",
                                  "executable", "executable size", "est. profit at depth",
                                  "needs", "capturable"], "episodes") if rows else (
        "<p>No episodes: no quote made a venue pair pass the alert thresholds.</p>")
    notes = "".join(f"<p class=\"caveat\">{escape(n)}</p>" for n in data.notes)
    elapsed = ", ".join(f"{k} {v:.1f} s" for k, v in data.elapsed_s.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Arbitrage replay report</title><style>{STYLE}</style></head>
<body>
<h1>Arbitrage replay report</h1>
<p>{escape(data.source)}: {escape(utc(data.first_ts_ms))} to {escape(utc(data.last_ts_ms))} UTC
(event time), run through the detection job as it runs live.</p>
{notes}
<div class="cards">{card_html}</div>
<h2>Settings</h2>
{_table(_settings_rows(data), ["setting", "value"], "settings")}
<p>An <b>episode</b> is one opportunity of one symbol and direction, found by checking every
quote against the latest live quote of every other venue: it opens at the first quote that makes
the pair pass the alert thresholds and closes once the pair has not passed for
{data.settings.episode_gap_ms} ms. It is <b>capturable</b> when it lasted (opening quote to the
end of the last pass) at least the slower venue's p99 feed latency plus the execution time.</p>
<h2>Spread per venue pair over time</h2>
{"".join(spread_charts(data))}
<h2>Episode durations</h2>
{duration_chart(data)}
<h2>Net spread distribution</h2>
{net_bps_chart(data)}
<h2>Profit by venue pair</h2>
{profit_chart(data)}
<h2>Order-book depth</h2>
<p>An alert's <b>executable size</b> is the largest order size of the depth ladder
(ARB_DEPTH_NOTIONALS_USD) at which buying at the buy venue's volume-weighted ask and selling at
the sell venue's volume-weighted bid still passes the alert rule after both taker fees; its
profit is at that size. The top-of-book numbers assume only the best level.</p>
<p class="depth-summary">{escape(depth_line(depth))}</p>
{alert_depth_table(data.alerts)}
<h2>Episodes</h2>
<p>Largest estimated profit first (at most {MAX_TABLE_ROWS}); every episode is in
<a href="{escape(csv_name)}">{escape(csv_name)}</a>.</p>
{episode_table}
<footer>Generated {escape(utc(data.generated_ts_ms))} UTC. {escape(elapsed)}</footer>
</body></html>
"""
