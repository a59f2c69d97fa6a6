"""The HTTP receive path: parse a CloudEvent, validate, stamp, publish to the Broker's backend, answer 202."""
