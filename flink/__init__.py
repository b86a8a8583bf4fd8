"""The PyFlink detection job: event-time windows over ``crypto-prices`` -> spreads and alerts."""
