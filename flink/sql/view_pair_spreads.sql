-- Every ordered pair of distinct venues in the same window: buy at b's ask, sell at s's bid.
-- The arithmetic is flink.detection.pair_arithmetic, shared with the tick path; it mirrors
-- services.common.spread.pair_numbers operation for operation; the executable_* columns are
-- flink.detection.executable_columns, services.common.spread.executable.
CREATE TEMPORARY VIEW pair_spreads AS
SELECT
  CONCAT(b.symbol, '|', CAST($window_end_ms AS STRING), '|', b.exchange, '|', s.exchange) AS id,
  b.symbol AS symbol,
  $window_start_ms AS window_start_ms,
  $window_end_ms AS window_end_ms,
  b.exchange AS buy_exchange,
  b.ask AS buy_ask,
  b.ask_size AS buy_size,
  s.exchange AS sell_exchange,
  s.bid AS sell_bid,
  s.bid_size AS sell_size,
$pair_arithmetic,
$executable_columns,
  $window_end_ms - LEAST(b.recv_ts_ms, s.recv_ts_ms) AS quote_age_ms,
  GREATEST(b.recv_ts_ms, s.recv_ts_ms) AS newest_recv_ts_ms,
  $now_ts_ms AS detected_ts_ms,
  1 AS v
FROM window_quotes AS b
JOIN window_quotes AS s
  ON b.symbol = s.symbol
  AND b.window_start = s.window_start
  AND b.window_end = s.window_end
  AND b.exchange <> s.exchange
  -- True of every window quote (seed mode: bid = ask): it makes both sides read the same
  -- columns, so the planner runs one window deduplication (or average) for both sides
  -- instead of one per side.
  AND b.bid <= b.ask AND s.bid <= s.ask
  AND COALESCE(b.bid_size, 0) >= 0 AND COALESCE(b.ask_size, 0) >= 0
  AND COALESCE(s.bid_size, 0) >= 0 AND COALESCE(s.ask_size, 0) >= 0$depth_join_terms
