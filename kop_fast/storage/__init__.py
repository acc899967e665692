"""Where Kafka data lives: `api` is the interface the server sees; `pulsar` the product's
implementation on Apache Pulsar; `memory` an in-memory one for fast handler tests."""
