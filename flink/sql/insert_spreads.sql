INSERT INTO spreads_sink SELECT $spread_columns FROM pair_spreads
