"""The cyclic collector is paused for a batch of control's work and always resumed after it."""

from __future__ import annotations

import gc

import pytest

from control.reconcilers import gc_pause


def test_paused_inside_resumed_after_even_on_an_error_and_only_by_the_outermost() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_pause.paused():
        assert not gc.isenabled()
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause ended; the outer one still holds
        raise RuntimeError("a pass that fails")
    assert gc.isenabled()


def test_a_collector_someone_else_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
