-- The alert rule, stated once: the alerts sink and the episode pipeline both read this view.
-- Thresholds come from configuration; a spread at or above the bad-quote guard is never an alert.
CREATE TEMPORARY VIEW alert_spreads AS
SELECT * FROM pair_spreads
WHERE spread_usd >= $min_spread_usd
  AND spread_bps < $max_spread_bps
  $net_bps_condition
