"""Trigger filters: the legacy attribute filter, the Subscriptions API dialects and CESQL v1.

Used by control (validation at apply time) and the dispatcher (one compiled filter per Trigger
generation). See base.py for the PASS / FAIL / NO_FILTER model.
"""

from core.filters.base import EventFilter, Result
from core.filters.build import compile_trigger_filter
from core.filters.validation import validate_trigger_filters

__all__ = ["EventFilter", "Result", "compile_trigger_filter", "validate_trigger_filters"]
