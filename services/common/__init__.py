"""Code every service shares: configuration, message schema, Kafka, metrics, logging, broker."""
