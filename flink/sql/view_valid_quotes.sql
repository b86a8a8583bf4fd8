-- The same validity rule as services.common.messages.validate_quote: positive finite prices,
-- non-negative sizes, an uncrossed book. Fees are attached here, per venue, from configuration.
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
  $fee_case AS fee_bps
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
  AND (ask_size IS NULL OR ask_size >= 0)
