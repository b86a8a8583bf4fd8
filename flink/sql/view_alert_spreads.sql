-- The alert rule of the window path (flink.detection.alert_rule, which the tick path applies
-- too): thresholds from configuration; a spread at or above the bad-quote guard never alerts.
-- The term "OR detected_ts_ms < 0" is never true (a wall-clock time), but it is not
-- deterministic, so the planner cannot push the rule into the window join: the spreads and
-- alerts sinks then share one join instead of running two (bench/bench_detection.py).
CREATE TEMPORARY VIEW alert_spreads AS
SELECT * FROM pair_spreads
WHERE $alert_rule OR detected_ts_ms < 0
