"""What the long-running stages (sealer, archiver) share to stay up: which Kafka errors are
fatal and how a stage recovers from them (:mod:`.kafka_faults`)."""
