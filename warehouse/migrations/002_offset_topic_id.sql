-- Schema version 2: remember the Kafka topic id (a UUID since Kafka 2.8; Tansu has
-- them too) with each stored offset. A topic deleted and recreated under the same
-- name gets a new id, and its offsets restart at 0: with the id the ingest notices
-- and reads it from the beginning instead of skipping the new records.
ALTER TABLE ingest_offset ADD COLUMN topic_id VARCHAR;
