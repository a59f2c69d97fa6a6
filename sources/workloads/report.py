"""The seam between the runner and whoever records what it saw (in `nerve up`: the control store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core.contract import Workload

StateName = Literal["waiting", "running", "terminated"]


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container's state as the kubelet reports it (Kubernetes' ContainerStatus)."""

    container: str
    state: StateName
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    ready: bool = False
    pid: int | None = None
    last_terminated: dict[str, Any] | None = None

    def terminated_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code if self.exit_code is not None else 0,
                               "reason": self.reason, "startedAt": self.started_at, "finishedAt": self.finished_at}
        if self.message:
            out["message"] = self.message
        return out

    def to_status(self) -> dict[str, Any]:
        """Kubernetes' containerStatuses[] entry; `containerID` is `process://<pid>`."""
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_json()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {"name": self.container, "ready": self.ready, "restartCount": self.restart_count,
                               "started": self.state == "running", "state": state,
                               "lastState": {"terminated": self.last_terminated} if self.last_terminated else {}}
        if self.pid is not None:
            out["containerID"] = f"process://{self.pid}"
        return out


class WorkloadReporter(Protocol):
    """Where the runner says what happened; calls must not block on a reconcile (they come from inside one)."""

    async def container_state(self, workload: Workload, state: ContainerState) -> None:
        """The container's new state (its Pod's `status.containerStatuses[]`)."""
        ...

    async def event(self, workload: Workload, reason: str, message: str, type_: str = "Normal") -> None:
        """A kubelet Event about the container's Pod (reason Created, Started, BackOff, Killing, Failed)."""
        ...
