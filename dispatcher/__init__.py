"""The egress path: consume, filter, deliver with retries, route replies, dead-letter, ack."""
