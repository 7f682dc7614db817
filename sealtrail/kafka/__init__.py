"""Apache Kafka: the broker fetched from Maven Central for development and tests
(:mod:`.broker`), client security settings (:mod:`.client`), the principals and ACLs of
least privilege (:mod:`.principals`, :mod:`.acls`)."""
