-- One record per window and ordered venue pair (buy at one venue's ask, sell at the other's bid).
CREATE TABLE $table (
  id STRING,
  symbol STRING,
  window_start_ms BIGINT,
  window_end_ms BIGINT,
  buy_exchange STRING,
  buy_ask DOUBLE,
  buy_size DOUBLE,
  sell_exchange STRING,
  sell_bid DOUBLE,
  sell_size DOUBLE,
  spread_usd DOUBLE,
  spread_bps DOUBLE,
  net_spread_bps DOUBLE,
  max_size DOUBLE,
  est_profit_usd DOUBLE,
  quote_age_ms BIGINT,
  newest_recv_ts_ms BIGINT,
  detected_ts_ms BIGINT,
  executable_usd DOUBLE,
  executable_size DOUBLE,
  executable_profit_usd DOUBLE,
  v INT
) WITH (
$sink_options
)
