"""The local broker's own ceiling, measured with an independent Kafka client (confluent-kafka, which
bundles librdkafka 2.16): how many messages per second the local Apache Kafka broker acknowledges for a
given message shape,
with the ingest producer's settings (acks=all, idempotent, lz4, linger 5 ms, 4 partitions).

The ingest benchmark (`cargo bench -p tweetlake-ingest --bench ingest_produce`) is compared with what
this reports for the envelope's shape against the same broker in the same run.

    eval "$(infra/local/stack.sh up)"
    python shared/ingest/benches/broker_ceiling.py                     # envelope shape: 700 B, 4 headers
    python shared/ingest/benches/broker_ceiling.py --size 100 --headers 0
"""

import argparse
import os
import time
import uuid

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("TWEETLAKE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=700, help="value bytes (an envelope is about 700)")
    ap.add_argument("--headers", type=int, default=4, help="headers per message (the producer sets 4)")
    ap.add_argument("--compression", default="lz4")
    ap.add_argument("--no-idempotence", action="store_true")
    ap.add_argument("--linger-ms", type=int, default=5)
    args = ap.parse_args()

    topic = f"ceiling-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})  # kept alive until the topic exists
    for f in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        f.result()
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": not args.no_idempotence,
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
    })
    value = os.urandom(args.size // 2 + 1).hex().encode()[: args.size]
    headers = [(f"tweetlake-header-{i}", f"value-{i}".encode()) for i in range(args.headers)] or None
    failed = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(err)

    start = time.perf_counter()
    for i in range(args.messages):
        while True:
            try:
                producer.produce(topic, value=value, key=str(1_700_000_000_000_000_000 + i).encode(), headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0 or failed:
        raise KafkaException(f"{len(failed)} messages not acknowledged: {failed[:1]}")
    secs = time.perf_counter() - start
    print(f"{args.messages} messages of {args.size} B with {args.headers} headers ({args.compression}, "
          f"idempotence {'off' if args.no_idempotence else 'on'}): {args.messages / secs:,.0f} msg/s acknowledged, "
          f"{args.messages * args.size / secs / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main()
