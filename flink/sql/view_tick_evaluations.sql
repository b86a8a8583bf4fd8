-- The tick path, step 4: each evaluation next to the pair's previous one (arrival order). A pass
-- holds until the next evaluation or until its older side goes stale: previous_end_ms is that
-- end for the previous evaluation, when it passed.
CREATE TEMPORARY VIEW tick_evaluations AS
SELECT *,
  CASE WHEN previous_passing THEN LEAST(tick_ts_ms, previous_stale_until_ms) END
    AS previous_end_ms
FROM (
  SELECT *,
    LAG(passing) OVER p AS previous_passing,
    LAG(stale_until_ms) OVER p AS previous_stale_until_ms,
    LAG(tick_ts_ms) OVER p AS previous_tick_ts_ms
  FROM tick_spreads
  WINDOW p AS (PARTITION BY symbol, buy_exchange, sell_exchange ORDER BY proc_time)
)
