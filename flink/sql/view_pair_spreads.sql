-- Every ordered pair of distinct venues in the same window: buy at b's ask, sell at s's bid.
-- The arithmetic mirrors services.common.spread.pair_spread operation for operation.
-- pair_time (window end - 1 ms) is the pair's event time for the episode pipeline; it is not a
-- sink column, so the inserts name their columns.
CREATE TEMPORARY VIEW pair_spreads AS
SELECT
  1 AS v,
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
  s.bid - b.ask AS spread_usd,
  (s.bid - b.ask) / b.ask * 10000 AS spread_bps,
  (s.bid - b.ask) / b.ask * 10000 - b.fee_bps - s.fee_bps AS net_spread_bps,
  $max_size AS max_size,
  ((s.bid - b.ask) / b.ask * 10000 - b.fee_bps - s.fee_bps) / 10000 * b.ask * $max_size
    AS est_profit_usd,
  $window_end_ms - LEAST(b.recv_ts_ms, s.recv_ts_ms) AS quote_age_ms,
  GREATEST(b.recv_ts_ms, s.recv_ts_ms) AS newest_recv_ts_ms,
  $now_ms AS detected_ts_ms,
  b.window_time AS pair_time
FROM window_quotes AS b
JOIN window_quotes AS s
  ON b.symbol = s.symbol
  AND b.window_start = s.window_start
  AND b.window_end = s.window_end
  AND b.exchange <> s.exchange
