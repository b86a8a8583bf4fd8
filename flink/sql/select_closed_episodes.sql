-- A closed episode: a session of alert windows of one symbol and direction, each within
-- $gap_windows window(s) of the previous one. The session gap is $gap_ms ms + 1 ms on the pair's
-- event time (window end - 1 ms), so alert windows whose ends are at most $gap_ms ms apart join
-- the same session and the session closes once the watermark shows $gap_windows more window(s)
-- without an alert (or the input ends).
-- A query, not a view: Flink 2.3 cannot expand a stored view holding a SESSION window with a
-- PARTITION BY list ("Column not found"), so insert_episodes.sql embeds it.
SELECT
  symbol,
  buy_exchange,
  sell_exchange,
  MIN(window_start_ms) AS start_ms,
  MIN(window_end_ms) AS first_window_end_ms,
  MAX(window_end_ms) AS end_ms,
  COUNT(*) AS windows,
  MAX(net_spread_bps) AS peak_net_spread_bps,
  AVG(net_spread_bps) AS mean_net_spread_bps,
  MAX(spread_usd) AS peak_spread_usd,
  MAX(est_profit_usd) AS peak_est_profit_usd,
  MAX(newest_recv_ts_ms) AS newest_recv_ts_ms,
  FALSE AS is_open
FROM TABLE(SESSION(
  TABLE alert_spreads PARTITION BY (symbol, buy_exchange, sell_exchange),
  DESCRIPTOR(pair_time),
  INTERVAL '$session_gap_seconds' SECOND
))
GROUP BY symbol, buy_exchange, sell_exchange, window_start, window_end
