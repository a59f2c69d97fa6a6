"""Trigger filters: the legacy attribute filter, the Subscriptions API dialects and CESQL v1.

Used by control (validation at apply time) and the dispatcher (one compiled filter per Trigger
generation), which is why it lives in core/. The logic lives in the modules named for it; base.py
explains the PASS / FAIL / NO_FILTER model and why values compare by their string form.
"""

from core.filters.base import EventFilter
from core.filters.build import compile_trigger_filter
from core.filters.validation import validate_trigger_filters

__all__ = ["EventFilter", "compile_trigger_filter", "validate_trigger_filters"]
