-- An episode opens with an alert window that has no alert of the same symbol and direction in
-- the $gap_windows window(s) before it: the previous alert's window end is further back than
-- $gap_ms ms (LAG over the pair's event time). Emitted at once, still open (is_open = TRUE).
CREATE TEMPORARY VIEW opened_episodes AS
SELECT
  symbol,
  buy_exchange,
  sell_exchange,
  window_start_ms AS start_ms,
  window_end_ms AS first_window_end_ms,
  window_end_ms AS end_ms,
  CAST(1 AS BIGINT) AS windows,
  net_spread_bps AS peak_net_spread_bps,
  net_spread_bps AS mean_net_spread_bps,
  spread_usd AS peak_spread_usd,
  est_profit_usd AS peak_est_profit_usd,
  newest_recv_ts_ms,
  TRUE AS is_open
FROM (
  SELECT *,
    LAG(window_end_ms) OVER (
      PARTITION BY symbol, buy_exchange, sell_exchange
      ORDER BY pair_time
    ) AS previous_window_end_ms
  FROM alert_spreads
)
WHERE previous_window_end_ms IS NULL
   OR window_end_ms - previous_window_end_ms > $gap_ms
