INSERT INTO spreads_sink SELECT * FROM pair_spreads
