-- The same validity rule as services.common.messages.parse_price_record and validate_quote:
-- names of 1 to MAX_NAME_CHARS characters that are not a number, keyword or container as text
-- (flink.detection.name_ok: the JSON format turns a number or boolean in a STRING column into
-- text), integral times, positive prices below $max_price, non-negative finite sizes, an
-- uncrossed book, at most MAX_DEPTH_LEVELS ladder entries and at each of the first positions
-- (six, or as many as configured) a notional above the one before and prices null or
-- positive, all below 1e308. Fees are attached here, per venue, from configuration.
-- What this view cannot see, because the JSON format has already coerced it: a number written
-- as a string ("1.5") in a number column, a value of another type in an optional column (read
-- as null), a top-level array around a record; see docs/reliability.md.
-- The depth ladder becomes one bid_px_<i> / ask_px_<i> column pair per configured size (i from
-- 1, increasing), set only when the ladder has exactly the configured sizes (depth_ok): any
-- other ladder counts as no depth (services.common.spread.ladder_matches). The reference rejects
-- some ladders that this view cannot see (entries past those positions, sizes not increasing, a
-- ladder that is not a list): such quotes are hostile input, never written by the producer.
-- Read by the window path (view_window_quotes.sql) and the tick path (view_tick_books.sql).
CREATE TEMPORARY VIEW valid_quotes AS
SELECT
  symbol,
  exchange,
  bid,
  bid_size,
  ask,
  ask_size,
  CAST(ts_ms AS BIGINT) AS ts_ms,
  CAST(recv_ts_ms AS BIGINT) AS recv_ts_ms,
  kafka_offset,
  event_time,
  proc_time,
  fee_bps$depth_columns
FROM (
  SELECT *,
    $fee_case AS fee_bps,
    $depth_ok AS depth_ok
  FROM prices
  WHERE v = 1
    AND `type` = 'quote'
    AND fx_to_usd > 0 AND fx_to_usd < $max_price$record_checks
    AND bid > 0
    AND ask > bid
    AND ask < $max_price
    AND (bid_size IS NULL OR bid_size >= 0 AND bid_size <= $max_size)
    AND (ask_size IS NULL OR ask_size >= 0 AND ask_size <= $max_size)$depth_valid
)
