"""The backend seam: publish events to a topic, consume them per consumer group with explicit acks.

`channels.base` holds the Protocols, `channels.registry` builds an implementation by name, and
`channels.memory`, `channels.kafka`, `channels.nats` are the implementations. Nothing outside this
package imports aiokafka or nats-py.
"""
