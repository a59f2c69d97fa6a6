"""The argv and environment of a workload's process."""

from __future__ import annotations

import os
import sys

from core.contract import Workload

# Nerve's own programs for Knative's sample images, run as child processes like any other workload.
_BUILTIN_ARGV: dict[str, tuple[str, ...]] = {
    "event_display": ("-m", "nerve", "display", "--host", "127.0.0.1"),
    "heartbeats": ("-m", "nerve.heartbeats"),
}


def argv(workload: Workload) -> list[str]:
    if workload.builtin == "event_display":
        # Knative's event_display takes no flags; it listens on $PORT.
        return [sys.executable, *_BUILTIN_ARGV["event_display"], "--port", str(workload.port or 8080)]
    if workload.builtin:
        return [sys.executable, *_BUILTIN_ARGV[workload.builtin], *workload.args]
    return [*workload.command, *workload.args]


def environment(workload: Workload) -> dict[str, str]:
    """The host's environment (PATH, HOME, the virtualenv: a local process needs them, a container has its
    image's) without Nerve's own settings and token, then the Pod's env over it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
    base["PYTHONUNBUFFERED"] = "1"
    return {**base, **dict(workload.env)}
