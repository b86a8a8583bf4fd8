-- The alert rule of the window path (flink.detection.alert_rule, which the tick path applies
-- too): thresholds from configuration; a spread at or above the bad-quote guard never alerts.
CREATE TEMPORARY VIEW alert_spreads AS
SELECT * FROM pair_spreads
WHERE $alert_rule
