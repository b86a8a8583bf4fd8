-- A closed episode: a session of its evaluations (keyed by its start), in event time. Two of
-- them are at most stale + gap apart, so a gap of $session_gap_seconds s (one ms more) never
-- splits one; it closes when the watermark is that far past its last evaluation (or the input
-- ends). The last pass ended at the evaluation after it when one came within reach (then every
-- pass has one: successors >= quotes), else when its older side went stale. The executable_*
-- are each the largest over the passes, like the peaks (services.common.episodes).
-- A query, not a view: Flink 2.3 cannot expand a stored view holding a SESSION window with a
-- PARTITION BY list ("Column not found"), so insert_episodes.sql embeds it.
SELECT
  symbol,
  buy_exchange,
  sell_exchange,
  start_ms,
  CASE
    WHEN SUM(CASE WHEN is_successor THEN 1 ELSE 0 END) >= SUM(CASE WHEN passing THEN 1 ELSE 0 END)
    THEN MAX(CASE WHEN is_successor THEN previous_end_ms END)
    ELSE MAX(CASE WHEN passing THEN stale_until_ms END)
  END AS end_ms,
  CAST(SUM(CASE WHEN passing THEN 1 ELSE 0 END) AS BIGINT) AS quotes,
  MAX(CASE WHEN passing THEN net_spread_bps END) AS peak_net_spread_bps,
  AVG(CASE WHEN passing THEN net_spread_bps END) AS mean_net_spread_bps,
  MAX(CASE WHEN passing THEN spread_usd END) AS peak_spread_usd,
  MAX(CASE WHEN passing THEN est_profit_usd END) AS peak_est_profit_usd,
  MAX(CASE WHEN passing THEN newest_recv_ts_ms END) AS newest_recv_ts_ms,
  FALSE AS is_open,
  MAX(CASE WHEN passing THEN executable_usd END) AS executable_usd,
  MAX(CASE WHEN passing THEN executable_size END) AS executable_size,
  MAX(CASE WHEN passing THEN executable_profit_usd END) AS executable_profit_usd
FROM TABLE(SESSION(
  TABLE tick_episode_rows PARTITION BY (symbol, buy_exchange, sell_exchange, start_ms),
  DESCRIPTOR(event_time),
  INTERVAL '$session_gap_seconds' SECOND
))
GROUP BY symbol, buy_exchange, sell_exchange, start_ms, window_start, window_end
