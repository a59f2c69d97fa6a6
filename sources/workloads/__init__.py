"""The local kubelet of embedded mode: each `workloads[]` entry of the contract (one container of a Pod)
runs as a child process in its own process group, restarted as its Pod's restartPolicy says with capped
exponential back-off, its output appended to a log file under the state dir (`nerve logs` reads it), what
happens reported back through a `WorkloadReporter` (the Pod's containerStatuses and kubelet-like Events).

It runs inside `nerve up` only: separate services (`python -m sources`) start no runner, and control then
marks each Pod NoLocalRunner.
"""

from sources.workloads.report import ContainerState, WorkloadReporter
from sources.workloads.runner import WorkloadRunner

__all__ = ["ContainerState", "WorkloadReporter", "WorkloadRunner"]
