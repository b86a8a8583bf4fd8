-- The tick path, step 1: at every quote, the latest quote of every configured venue for its
-- symbol, one set of columns per venue (LAST_VALUE skips nulls, so a venue's columns keep its own
-- latest quote); seq is its Kafka offset, its place in arrival order. Ordered by proc_time: a
-- symbol's records all come from its one Kafka partition, in the log's order, so a row is out as
-- soon as its quote is read, never held for a watermark; time is still event time, the ts_ms
-- carried in the columns. A null size is stored as -1 (sizes are never negative here) so a null
-- of the latest quote does not let an older size through.
CREATE TEMPORARY VIEW tick_books AS
SELECT
  symbol,
  exchange,
  ts_ms AS tick_ts_ms,
  event_time,
  proc_time,
$venue_columns
FROM valid_quotes
WHERE exchange IN ($venues)
WINDOW w AS (
  PARTITION BY symbol ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
)
