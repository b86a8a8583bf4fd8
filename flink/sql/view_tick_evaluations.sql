-- The tick path, step 5: each evaluation with the end of the pair's previous pass. A pass holds
-- until the next evaluation or until its older side goes stale: previous_end_ms is that end for
-- the previous evaluation, when it passed. Only passing evaluations and those right after one
-- matter from here on (the others carry no previous_end_ms and open nothing): the rest, nearly
-- all of them on a calm market, stop here, before any per-pair state. Only the columns the
-- episodes read go on (an OVER aggregation carries every column it is given).
CREATE TEMPORARY VIEW tick_evaluations AS
SELECT
  symbol,
  buy_exchange,
  sell_exchange,
  tick_ts_ms,
  event_time,
  proc_time,
  passing,
  stale_until_ms,
  newest_recv_ts_ms,
  spread_usd,
  net_spread_bps,
  est_profit_usd,
  executable_usd,
  executable_size,
  executable_profit_usd,
  previous_tick_ts_ms,
  CASE WHEN previous_passing THEN LEAST(tick_ts_ms, previous_stale_until_ms) END
    AS previous_end_ms
FROM tick_spreads
WHERE passing OR previous_passing
