"""Label values: capped per owner, always UTF-8-encodable."""

from __future__ import annotations

from core.metric_labels import MAX_LENGTH, OTHER, LabelCap, safe_label


def test_the_first_values_are_kept_and_the_rest_fold_into_other() -> None:
    cap = LabelCap(limit=3)
    assert [cap(v) for v in ("a", "b", "c", "d", "a", "e")] == ["a", "b", "c", OTHER, "a", OTHER]


def test_a_value_too_long_to_be_a_label_folds_and_takes_no_place() -> None:
    cap = LabelCap(limit=1)
    assert cap("x" * (MAX_LENGTH + 1)) == OTHER
    assert cap("short") == "short"


def test_lone_surrogates_become_escapes_and_text_stays_text() -> None:
    assert safe_label("bad\udc80type") == "bad\\udc80type"
    assert safe_label("caf\u00e9") == "caf\u00e9"
    safe_label("\ud800").encode()  # encodable: the exposition would not fail
