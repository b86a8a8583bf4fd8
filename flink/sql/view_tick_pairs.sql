-- The tick path, step 2: every ordered venue pair that includes the quote's venue, buy side and
-- sell side named alike whatever the venues (one SELECT per ordered pair, generated).
CREATE TEMPORARY VIEW tick_pairs AS
$pair_selects
