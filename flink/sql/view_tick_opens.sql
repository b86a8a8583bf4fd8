-- The tick path, step 5: an episode opens at a passing evaluation when the pair's last pass
-- ended more than $gap_ms ms before it (or it never passed). Read by the opened records at once.
-- Only passing evaluations and those right after one matter from here on (the others carry no
-- previous_end_ms and open nothing): the rest, nearly all of them on a calm market, stop here.
CREATE TEMPORARY VIEW tick_opens AS
SELECT *,
  passing AND (last_end_ms IS NULL OR tick_ts_ms - last_end_ms > $gap_ms) AS opens
FROM (
  SELECT *,
    LAST_VALUE(previous_end_ms) OVER p AS last_end_ms
  FROM tick_evaluations
  WHERE passing OR previous_passing
  WINDOW p AS (
    PARTITION BY symbol, buy_exchange, sell_exchange
    ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
)
