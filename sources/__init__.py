"""Sources: adapters that produce events to a sink URI, run by the `sources` service (`python -m sources`,
and inside `nerve up`) from the contract's `sources` section. KafkaSource lives here (sources/kafka.py);
PingSource, ApiServerSource, ContainerSource and SinkBinding arrive with their own issues."""
