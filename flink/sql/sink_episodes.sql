-- arbitrage-episodes (tick path): one record when an episode opens (is_open = TRUE), one when it
-- closes.
CREATE TABLE $table (
  id STRING,
  symbol STRING,
  buy_exchange STRING,
  sell_exchange STRING,
  start_ms BIGINT,
  end_ms BIGINT,
  duration_ms BIGINT,
  quotes BIGINT,
  peak_net_spread_bps DOUBLE,
  mean_net_spread_bps DOUBLE,
  peak_spread_usd DOUBLE,
  peak_est_profit_usd DOUBLE,
  required_ms BIGINT,
  capturable BOOLEAN,
  is_open BOOLEAN,
  newest_recv_ts_ms BIGINT,
  detected_ts_ms BIGINT,
  executable_usd DOUBLE,
  executable_size DOUBLE,
  executable_profit_usd DOUBLE,
  v INT
) WITH (
$sink_options
)
