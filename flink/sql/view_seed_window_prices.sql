-- Seed-compatible mode (ARB_MODE=seed): the original design, kept to compare against.
-- Per tumbling window, symbol and venue: the average trade price, used as both bid and ask
-- (no sizes, no book, no ladder), so the pair view below yields "average price difference"
-- spreads.
CREATE TEMPORARY VIEW window_quotes AS
SELECT
  symbol,
  exchange,
  AVG(price) AS bid,
  CAST(NULL AS DOUBLE) AS bid_size,
  AVG(price) AS ask,
  CAST(NULL AS DOUBLE) AS ask_size,$depth_columns
  CAST(MAX(recv_ts_ms) AS BIGINT) AS recv_ts_ms,
  $fee_case AS fee_bps,
  window_start,
  window_end,
  window_time
FROM TABLE(TUMBLE(TABLE prices, DESCRIPTOR(event_time), INTERVAL '$window_seconds' SECOND))
WHERE v = 1
  AND `type` = 'trade'
  AND fx_to_usd > 0 AND fx_to_usd < $max_price$record_checks
  AND price > 0 AND price < $max_price
  AND size >= 0 AND size <= $max_size
  AND side IN ('buy', 'sell')
  AND trade_id IS NOT NULL AND $trade_id_ok
GROUP BY symbol, exchange, window_start, window_end, window_time
