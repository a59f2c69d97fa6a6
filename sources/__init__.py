"""Sources: adapters that produce events to a sink URI (PingSource, ApiServerSource, ContainerSource,
SinkBinding, KafkaSource). They arrive with their own issues."""
