"""Knative's DeliverySpec: retries, back-off, timeout, dead-letter sink and event format."""

from __future__ import annotations

from typing import Any

from control.api.destination import default_destination, validate_destination
from core.durations import parse_ms
from core.errors import FieldError

# config-br-defaults as Knative ships it; copied into a Broker only when it has no spec.delivery.
# Knative's DeliverySpec.Retry is an *int32; a larger number is no retry count Knative would accept.
INT32_MAX = 2**31 - 1
DEFAULT_BROKER_DELIVERY: dict[str, Any] = {"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}


def default_delivery(delivery: Any, namespace: str) -> None:
    if isinstance(delivery, dict):
        default_destination(delivery.get("deadLetterSink"), namespace)


def validate_delivery(delivery: Any, path: str, namespace: str) -> list[FieldError]:
    if delivery is None:
        return []
    if not isinstance(delivery, dict):
        return [FieldError(path, "must be an object")]
    errors: list[FieldError] = []
    # Unknown keys are the schema's business (a warning, or an error with --validate=strict).
    if "deadLetterSink" in delivery:
        errors += validate_destination(delivery["deadLetterSink"], f"{path}.deadLetterSink", namespace)
    retry = delivery.get("retry")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool) or retry < 0):
        errors.append(FieldError(f"{path}.retry", f"{retry!r} must be an integer >= 0"))
    elif retry is not None and retry > INT32_MAX:
        errors.append(FieldError(f"{path}.retry", f"{retry!r} must be at most {INT32_MAX}"))
    policy = delivery.get("backoffPolicy")
    if policy is not None and policy not in ("linear", "exponential"):
        errors.append(FieldError(f"{path}.backoffPolicy", f"{policy!r} must be linear or exponential"))
    for key in ("backoffDelay", "timeout", "retryAfterMax"):
        value = delivery.get(key)
        if value is None:
            continue
        try:
            ms = parse_ms(value)
        except ValueError as exc:
            errors.append(FieldError(f"{path}.{key}", str(exc)))
            continue
        if key == "timeout" and ms <= 0:
            errors.append(FieldError(f"{path}.timeout", "must be greater than 0"))
    fmt = delivery.get("format")
    if fmt is not None and fmt not in ("json", "binary"):
        errors.append(FieldError(f"{path}.format", f"{fmt!r} must be json or binary"))
    return errors
