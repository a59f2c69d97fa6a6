"""The dispatcher's side of filters: a Trigger whose filter cannot compile."""

from __future__ import annotations

from core.contract import Egress, Reference
from dispatcher.egress import _compile_filter


def test_a_filter_that_does_not_compile_delivers_nothing() -> None:
    # Only a hand-edited contract can carry one (apply refuses it); delivering everything would be worse.
    egress = Egress(uid="u", reference=Reference("u", "ns", "t", "Trigger"), consumer_group="g",
                    destination="http://x/", filters=[{"cesql": "type = "}])
    assert not _compile_filter(egress).matches({"type": "anything"})
