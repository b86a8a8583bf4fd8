INSERT INTO alerts_sink SELECT $spread_columns FROM alert_spreads
