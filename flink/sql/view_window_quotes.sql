-- Per tumbling window, symbol and venue: the last quote by event time (window deduplication).
-- A venue with no record in a window (no update and no refresh) is absent from that window.
-- The ladder's per-size columns (bid_px_<i>, ask_px_<i>) come from that same last quote.
-- window_time (window end - 1 ms) stays a time attribute, for the episode pipeline downstream.
CREATE TEMPORARY VIEW window_quotes AS
SELECT symbol, exchange, bid, bid_size, ask, ask_size, recv_ts_ms, fee_bps,$depth_columns
       window_start, window_end, window_time
FROM (
  SELECT *,
    ROW_NUMBER() OVER (
      PARTITION BY window_start, window_end, symbol, exchange
      ORDER BY event_time DESC
    ) AS row_num
  FROM TABLE(TUMBLE(TABLE valid_quotes, DESCRIPTOR(event_time), INTERVAL '$window_seconds' SECOND))
)
WHERE row_num = 1
