"""The default topic and consumer-group templates are injective over every valid namespace and name
(issue 9, defect 6): a namespace is an RFC 1123 label (no '.'), so `knative-broker.<ns>.<name>` splits back
at its first '.' after the prefix. And what Kafka and NATS make of those names stays apart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from channels.nats import stream_name
from control.settings import ControlSettings

_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
_SUBDOMAIN = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
_PAIRS = st.tuples(_LABEL, _SUBDOMAIN)


@given(_PAIRS, _PAIRS)
def test_two_brokers_share_a_topic_only_when_they_are_the_same_broker(
    a: tuple[str, str], b: tuple[str, str],
) -> None:
    settings = ControlSettings()
    for template in (settings.topic_template, settings.consumer_group_template):
        name_a = template.format(namespace=a[0], name=a[1])
        name_b = template.format(namespace=b[0], name=b[1])
        assert (name_a == name_b) == (a == b)
        assert (stream_name(name_a) == stream_name(name_b)) == (a == b)
        assert "_" not in name_a  # Kafka folds '.' and '_' together in metric names; with no '_' nothing folds


def test_the_pair_that_used_to_collide_does_not() -> None:
    template = ControlSettings().topic_template
    assert template.format(namespace="a", name="b-c") != template.format(namespace="a-b", name="c")
