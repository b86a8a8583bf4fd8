-- Thresholds come from configuration; a spread at or above the bad-quote guard is never an alert.
INSERT INTO alerts_sink
SELECT * FROM pair_spreads
WHERE spread_usd >= $min_spread_usd
  AND spread_bps < $max_spread_bps
  $net_bps_condition
