"""`nerve run --binding NAME -- CMD ARGS...`: run any program as a SinkBinding's subject would run.

The binding is read through the control API; the program gets what Knative's webhook would inject into
a bound container (`K_SINK` = status.sinkUri, `K_CE_OVERRIDES` = the JSON of spec.ceOverrides, "" when it
has none) plus `NAMESPACE`, over the caller's environment. Its exit code is `nerve run`'s (128 + N when
it was killed by signal N, as a shell reports it).

Signals: SIGINT and SIGTERM sent to `nerve run` (kill, a supervisor, a container runtime) are passed to
the program, which decides how to stop; `nerve run` waits for it. A Ctrl-C typed at a terminal already
reaches the program, which is in the terminal's foreground process group with `nerve run`: that one is
not sent a second time (the kernel marks a terminal's signal with si_code > 0, a kill() with <= 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from control.reconcilers.resources.sinkbinding import ce_overrides_json

FORWARDED = (signal.SIGINT, signal.SIGTERM)
_POLL_S = 0.1


class NotBound(Exception):
    """The binding cannot give a program its sink: the message says why."""


def binding_env(binding: Mapping[str, Any]) -> dict[str, str]:
    """K_SINK, K_CE_OVERRIDES and NAMESPACE for a stored SinkBinding, or NotBound."""
    meta, spec, status = binding["metadata"], binding.get("spec") or {}, binding.get("status") or {}
    name, namespace = meta["name"], meta.get("namespace", "")
    sink = status.get("sinkUri")
    if not sink:
        provided: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "SinkProvided"), {})
        why = f": {provided['message']}" if provided.get("message") else " yet"
        raise NotBound(f'sinkbinding "{name}" in namespace "{namespace}" has no resolved sink{why}')
    return {"K_SINK": str(sink), "K_CE_OVERRIDES": ce_overrides_json(spec), "NAMESPACE": str(namespace)}


def _restore_mask() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _exit_status(code: int) -> int:
    return code if code >= 0 else 128 - code


def run(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run `command` with `env` over this process's environment; its exit status, signals forwarded."""
    if not hasattr(signal, "sigtimedwait"):  # macOS: no siginfo to tell a terminal's signal from a kill()
        return _run_forwarding_all(command, env)
    # The signals are blocked and taken with sigtimedwait, so none is lost between two polls and each
    # carries who sent it. The child unblocks them before it runs the program.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        child = subprocess.Popen(list(command), env={**os.environ, **env}, preexec_fn=_restore_mask)
        while (code := child.poll()) is None:
            info = signal.sigtimedwait(FORWARDED, _POLL_S)
            if info is not None and info.si_code <= 0:
                child.send_signal(info.si_signo)
        return _exit_status(code)
    finally:
        # A signal that came with or after the program's end (the terminal's Ctrl-C it exited on) is
        # spent: taken here, it does not interrupt `nerve run` once unblocked.
        while signal.sigtimedwait(FORWARDED, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _run_forwarding_all(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Where signals carry no sender, every SIGINT/SIGTERM is passed on (a Ctrl-C then arrives twice)."""
    child = subprocess.Popen(list(command), env={**os.environ, **env})
    previous = {sig: signal.signal(sig, lambda sig, _frame: child.send_signal(sig)) for sig in FORWARDED}
    try:
        return _exit_status(child.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
