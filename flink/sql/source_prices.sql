-- crypto-prices: quotes and trades of every venue, event time = ts_ms (one local clock).
-- Rows that are not JSON are skipped by the format; rows without a readable ts_ms get epoch 0
-- and so fall behind the watermark instead of failing the job. The three times are read as
-- DOUBLE, not BIGINT: the format would truncate a 1.5 to 1, which the readers reject
-- (flink.detection.SOURCE_AS_DOUBLE; the views check and cast them).
CREATE TABLE prices (
  v INT,
  `type` STRING,
  exchange STRING,
  symbol STRING,
  venue_symbol STRING,
  quote_ccy STRING,
  fx_to_usd DOUBLE,
  bid DOUBLE,
  bid_size DOUBLE,
  ask DOUBLE,
  ask_size DOUBLE,
  price DOUBLE,
  size DOUBLE,
  side STRING,
  trade_id STRING,
  ts_ms DOUBLE,
  recv_ts_ms DOUBLE,
  exchange_ts_ms DOUBLE,
  -- a quote's depth ladder (view_valid_quotes.sql flattens it into per-size columns)
  depth ARRAY<ROW<notional_usd DOUBLE, bid_px DOUBLE, ask_px DOUBLE>>,
  -- the record's place in its partition: arrival order, for the tick path (view_tick_pairs.sql)
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  event_time AS TO_TIMESTAMP_LTZ(
    CASE WHEN ts_ms = FLOOR(ts_ms) AND ABS(ts_ms) <= $max_exact_int
      THEN CAST(ts_ms AS BIGINT) ELSE 0 END, 3),
  -- arrival order, for the tick path (see view_tick_books.sql)
  proc_time AS PROCTIME(),
  WATERMARK FOR event_time AS event_time - INTERVAL '$watermark_seconds' SECOND
) WITH (
$source_options
)
