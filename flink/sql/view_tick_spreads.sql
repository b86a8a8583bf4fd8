-- The tick path, step 3: the pair arithmetic and the alert rule at this quote (the tick).
-- live: both sides quoted within $stale_ms ms of the tick's event time, either way, so a venue
-- whose clock jumps cannot pair. stale_until_ms: when the older side goes stale.
-- Mirrors services.common.ticks.evaluate_pair.
CREATE TEMPORARY VIEW tick_spreads AS
SELECT *,
  CASE WHEN live AND $alert_rule THEN TRUE ELSE FALSE END AS passing
FROM (
  SELECT *,
    buy_ts_ms IS NOT NULL AND sell_ts_ms IS NOT NULL
      AND ABS(tick_ts_ms - buy_ts_ms) <= $stale_ms
      AND ABS(tick_ts_ms - sell_ts_ms) <= $stale_ms AS live,
    LEAST(buy_ts_ms, sell_ts_ms) + $stale_ms AS stale_until_ms,
    GREATEST(buy_recv_ts_ms, sell_recv_ts_ms) AS newest_recv_ts_ms,
$pair_arithmetic
  FROM tick_pairs
)
