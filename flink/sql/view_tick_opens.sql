-- The tick path, step 6: an episode opens at a passing evaluation when the pair's last pass
-- ended more than $gap_ms ms before it (or it never passed). Read by the opened records at once.
CREATE TEMPORARY VIEW tick_opens AS
SELECT *,
  passing AND (last_end_ms IS NULL OR tick_ts_ms - last_end_ms > $gap_ms) AS opens
FROM (
  SELECT *,
    LAST_VALUE(previous_end_ms) OVER p AS last_end_ms
  FROM tick_evaluations
  WINDOW p AS (
    PARTITION BY symbol, buy_exchange, sell_exchange
    ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
)
