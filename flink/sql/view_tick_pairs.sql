-- The tick path, step 3: every ordered venue pair that includes the quote's venue, buy side and
-- sell side named alike whatever the venues (one SELECT per ordered pair, generated), with the
-- two quotes the pair's previous evaluation compared (from the books before this quote). That
-- evaluation came at whichever of them arrived later (larger seq: its Kafka offset, as a symbol
-- has one partition), so its tick is that quote's ts_ms.
CREATE TEMPORARY VIEW tick_pairs AS
SELECT *,
  CASE WHEN previous_sell_seq IS NULL OR previous_buy_seq > previous_sell_seq
    THEN previous_buy_ts_ms ELSE previous_sell_ts_ms END AS previous_tick_ts_ms
FROM (
$pair_selects
)
