-- Opened and closed episodes into one topic; the id is the same for both records of an episode.
-- Opened: the opening evaluation alone, straight from tick_opens (no window, no watermark).
-- required_ms: how long it must last to be captured: the slower venue's feed latency (p99,
-- configured) plus the execution time. The arithmetic mirrors services.common.episodes.
INSERT INTO episodes_sink
SELECT
  CONCAT(symbol, '|', buy_exchange, '|', sell_exchange, '|', CAST(start_ms AS STRING)) AS id,
  symbol,
  buy_exchange,
  sell_exchange,
  start_ms,
  end_ms,
  end_ms - start_ms AS duration_ms,
  quotes,
  peak_net_spread_bps,
  mean_net_spread_bps,
  peak_spread_usd,
  peak_est_profit_usd,
  required_ms,
  end_ms - start_ms >= required_ms AS capturable,
  is_open,
  newest_recv_ts_ms,
  $now_ts_ms AS detected_ts_ms,
  executable_usd,
  executable_size,
  executable_profit_usd,
  1 AS v
FROM (
  SELECT *,
    GREATEST($buy_latency_ms, $sell_latency_ms) + $execution_ms AS required_ms
  FROM (
    SELECT
      symbol,
      buy_exchange,
      sell_exchange,
      tick_ts_ms AS start_ms,
      tick_ts_ms AS end_ms,
      CAST(1 AS BIGINT) AS quotes,
      net_spread_bps AS peak_net_spread_bps,
      net_spread_bps AS mean_net_spread_bps,
      spread_usd AS peak_spread_usd,
      est_profit_usd AS peak_est_profit_usd,
      newest_recv_ts_ms,
      TRUE AS is_open,
      executable_usd,
      executable_size,
      executable_profit_usd
    FROM tick_opens
    WHERE opens
    UNION ALL
    $closed_episodes
  )
)
