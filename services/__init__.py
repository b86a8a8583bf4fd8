"""Real-time cross-exchange arbitrage detector: producers, alerter and dashboard."""
