"""GroupHolders (resources/trigger.py) answers what group_holder's scan of every Trigger answers, also when it
skips the groups for the default template (each Trigger's group its own unless a namespace has a dot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.reconcilers.resources import trigger as trigger_build
from control.settings import DEFAULT_CONSUMER_GROUP_TEMPLATE, ControlSettings


def trigger(namespace: str, name: str, uid: str, created: str, subscribed: bool = False) -> dict[str, Any]:
    status = {"conditions": [{"type": "SubscriptionReady", "status": "True"}]} if subscribed else {}
    return {"kind": "Trigger", "metadata": {"namespace": namespace, "name": name, "uid": uid,
                                            "creationTimestamp": created}, "spec": {"broker": "b"}, "status": status}


PLAIN = [trigger("ns1", f"t{i}", f"u{i}", f"2026-01-01T00:00:0{i % 10}Z") for i in range(12)]
# Pairs a non-injective template puts in one group ({namespace}-{name}: a/b-c and a-b/c), and a namespace
# with a dot, with which even the default template is not injective (a.b/c and a/b.c).
CLASHING = [trigger("a", "b-c", "x1", "2026-01-01T00:00:01Z"), trigger("a-b", "c", "x2", "2026-01-01T00:00:00Z"),
            trigger("a", "b.c", "y1", "2026-01-01T00:00:02Z", subscribed=True),
            trigger("a.b", "c", "y2", "2026-01-01T00:00:00Z")]


@pytest.mark.parametrize("template", [DEFAULT_CONSUMER_GROUP_TEMPLATE, "{namespace}-{name}", "one-group"])
@pytest.mark.parametrize("triggers", [PLAIN, PLAIN + CLASHING, CLASHING[:2]], ids=["plain", "clashing", "pair"])
def test_group_holders_answer_as_the_scan(template: str, triggers: list[dict[str, Any]]) -> None:
    settings = ControlSettings(Path("/unused"), consumer_group_template=template)
    holders = trigger_build.GroupHolders(triggers, settings)
    for t in triggers:
        assert holders.holder(t) is trigger_build.group_holder(t, triggers, settings)


def test_the_default_template_with_a_dotted_namespace_still_finds_the_holder() -> None:
    settings = ControlSettings(Path("/unused"))
    holders = trigger_build.GroupHolders(CLASHING, settings)
    assert holders.holder(CLASHING[3]) is CLASHING[2]  # the subscribed one keeps knative-trigger.a.b.c
