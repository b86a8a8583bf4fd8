-- The tick path, step 4: the pair arithmetic and the alert rule at this quote (the tick), and
-- the same for the pair's previous evaluation (previous_*), from the quotes it compared.
-- live: both sides quoted within $stale_ms ms of the tick's event time, either way, so a venue
-- whose clock jumps cannot pair. stale_until_ms: when the older side goes stale. executable_*:
-- over the two venues' latest ladders (flink.detection.executable_columns).
-- Mirrors services.common.ticks.evaluate_pair.
CREATE TEMPORARY VIEW tick_spreads AS
SELECT *,
  CASE WHEN live AND $alert_rule THEN TRUE ELSE FALSE END AS passing,
  CASE WHEN previous_live AND $previous_alert_rule THEN TRUE ELSE FALSE END
    AS previous_passing
FROM (
  SELECT *,
    buy_ts_ms IS NOT NULL AND sell_ts_ms IS NOT NULL
      AND ABS(tick_ts_ms - buy_ts_ms) <= $stale_ms
      AND ABS(tick_ts_ms - sell_ts_ms) <= $stale_ms AS live,
    previous_buy_ts_ms IS NOT NULL AND previous_sell_ts_ms IS NOT NULL
      AND ABS(previous_tick_ts_ms - previous_buy_ts_ms) <= $stale_ms
      AND ABS(previous_tick_ts_ms - previous_sell_ts_ms) <= $stale_ms AS previous_live,
    LEAST(buy_ts_ms, sell_ts_ms) + $stale_ms AS stale_until_ms,
    LEAST(previous_buy_ts_ms, previous_sell_ts_ms) + $stale_ms AS previous_stale_until_ms,
    GREATEST(buy_recv_ts_ms, sell_recv_ts_ms) AS newest_recv_ts_ms,
$pair_arithmetic,
$previous_pair_arithmetic,
$executable_columns
  FROM tick_pairs
)
