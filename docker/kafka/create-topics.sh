#!/bin/sh
# Compose's kafka-init: create the pipeline's four topics before anything produces to them.
#
# Runs in the apache/kafka image. Idempotent: an existing topic is kept, and grown to
# ARB_TOPIC_PARTITIONS partitions if it has fewer (Kafka cannot shrink a topic: that is only
# reported). Records are keyed by symbol, so more partitions spread symbols over more Flink
# source readers; see docs/operations.md before growing a topic that holds data.
# Writes /tmp/topics-ready (TOPICS_READY_FILE) when done: the healthcheck looks for it.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
PARTITIONS="${ARB_TOPIC_PARTITIONS:-3}"
KAFKA_TOPICS="${KAFKA_HOME:-/opt/kafka}/bin/kafka-topics.sh"
READY_FILE="${TOPICS_READY_FILE:-/tmp/topics-ready}"
ATTEMPTS=30

rm -f "$READY_FILE"

case "$PARTITIONS" in
  ''|*[!0-9]*|0) echo "create-topics: ARB_TOPIC_PARTITIONS=$PARTITIONS is not a positive integer" >&2; exit 2 ;;
esac

topics() {
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" "$@"
}

# The broker's healthcheck passed, but its controller may still be settling: retry a little.
attempt=1
until topics --list >/dev/null 2>&1; do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "create-topics: broker $BOOTSTRAP not reachable after $ATTEMPTS attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

for topic in "${ARB_PRICES_TOPIC:-crypto-prices}" "${ARB_SPREADS_TOPIC:-arbitrage-spreads}" \
             "${ARB_ALERTS_TOPIC:-arbitrage-alerts}" "${ARB_EPISODES_TOPIC:-arbitrage-episodes}"; do
  topics --create --if-not-exists --topic "$topic" --partitions "$PARTITIONS" \
    --replication-factor 1
  current=$(topics --describe --topic "$topic" \
    | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ -z "$current" ]; then
    echo "create-topics: could not read the partition count of $topic" >&2
    exit 1
  elif [ "$current" -lt "$PARTITIONS" ]; then
    echo "create-topics: growing $topic from $current to $PARTITIONS partitions"
    topics --alter --topic "$topic" --partitions "$PARTITIONS"
  elif [ "$current" -gt "$PARTITIONS" ]; then
    echo "create-topics: $topic keeps its $current partitions (more than $PARTITIONS;" \
         "Kafka cannot remove partitions)"
  fi
  echo "create-topics: $topic ready"
done

touch "$READY_FILE"
