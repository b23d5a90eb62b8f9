"""Kafka in and out: the embedded broker, topics, Avro decoding and encoding,
validation per record type, dead letters, `push` and the ingest consumer."""
