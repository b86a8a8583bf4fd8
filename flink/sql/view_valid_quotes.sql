-- The same validity rule as services.common.messages.validate_quote: positive finite prices,
-- non-negative sizes, an uncrossed book, and at each of the first ladder positions (six, or as
-- many as configured) a positive notional and prices null or positive. Fees are attached here,
-- per venue, from configuration.
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
  ts_ms,
  recv_ts_ms,
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
    AND symbol IS NOT NULL
    AND venue_symbol IS NOT NULL
    AND quote_ccy IS NOT NULL
    AND fx_to_usd > 0 AND fx_to_usd < $max_price
    AND exchange IS NOT NULL
    AND ts_ms IS NOT NULL
    AND recv_ts_ms IS NOT NULL
    AND bid > 0
    AND ask > bid
    AND ask < $max_price
    AND (bid_size IS NULL OR bid_size >= 0)
    AND (ask_size IS NULL OR ask_size >= 0)$depth_valid
)
