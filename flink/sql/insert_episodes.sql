-- Opened and closed episodes into one topic; the id is the same for both records of an episode.
-- confirmed_ms: how long the spread was seen to last (first alert window end -> last one).
-- required_ms: how long it must last to be captured: the slower venue's feed latency (p99,
-- configured) plus the execution time. The arithmetic mirrors services.common.episodes.
INSERT INTO episodes_sink
SELECT
  1 AS v,
  CONCAT(symbol, '|', buy_exchange, '|', sell_exchange, '|', CAST(first_window_end_ms AS STRING))
    AS id,
  symbol,
  buy_exchange,
  sell_exchange,
  start_ms,
  first_window_end_ms,
  end_ms,
  end_ms - start_ms AS duration_ms,
  windows,
  confirmed_ms,
  peak_net_spread_bps,
  mean_net_spread_bps,
  peak_spread_usd,
  peak_est_profit_usd,
  required_ms,
  confirmed_ms >= required_ms AS capturable,
  is_open,
  newest_recv_ts_ms,
  $now_ms AS detected_ts_ms
FROM (
  SELECT *,
    end_ms - first_window_end_ms AS confirmed_ms,
    GREATEST($buy_latency_ms, $sell_latency_ms) + $execution_ms AS required_ms
  FROM (
    SELECT * FROM opened_episodes
    UNION ALL
    $closed_episodes
  )
)
