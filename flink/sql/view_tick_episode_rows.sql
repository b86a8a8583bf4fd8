-- The tick path, step 7: the evaluations that make up an episode, under its start: its passes,
-- and each evaluation that ended a pass (is_successor) unless it opened the next episode or came
-- more than $reach_ms ms (stale + gap) later, when the pass ended by going stale instead.
CREATE TEMPORARY VIEW tick_episode_rows AS
SELECT * FROM (
  SELECT *,
    previous_end_ms IS NOT NULL AND NOT opens
      AND ABS(tick_ts_ms - previous_tick_ts_ms) <= $reach_ms AS is_successor
  FROM (
    SELECT *,
      LAST_VALUE(CASE WHEN opens THEN tick_ts_ms END) OVER p AS start_ms
    FROM tick_opens
    WINDOW p AS (
      PARTITION BY symbol, buy_exchange, sell_exchange
      ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    )
  )
)
WHERE start_ms IS NOT NULL AND (passing OR is_successor)
