"""The benchmarks under bench/ still run: the smallest run of each, on the memory backend.

They are never timed here (figures come from running them, docs/performance.md); this only keeps them
working as the CLI and the modules they drive change. bench_fanout.py and bench_channel.py went unrun for a
while and failed at their first case (bench_e2e's launchers had gained options theirs lacked, and the
control API's token and several ingress URLs had changed the helpers' signatures); each run here must
print its figure lines with every event delivered.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def test_bench_fanout_runs_a_case_and_delivers_every_event() -> None:
    out = run_bench("bench_fanout.py", "--cases", "1:1,3:1", "--modes", "after", "--events", "60",
                    "--idle-seconds", "0.2", "--concurrency", "4")
    lines = [line for line in out.splitlines() if line.startswith("memory after")]
    assert len(lines) == 2, out
    for line in lines:
        assert "undelivered=0" in line and "refused=0" in line, line
        assert int(re.search(r"deliveries=\s*(\d+)/s", line).group(1)) > 0, line  # type: ignore[union-attr]


def test_bench_e2e_runs_one_trigger(tmp_path: Path) -> None:
    out = run_bench("bench_e2e.py", "--triggers", "1", "--events", "60", "--rate", "50", "--rate-events", "20",
                    "--concurrency", "4", "--results-dir", str(tmp_path))
    lines = [line for line in out.splitlines() if line.startswith("memory embedded triggers=1")]
    assert len(lines) == 2 and all("undelivered=0" in line and "refused=0" in line for line in lines), out


def test_bench_channel_delivers_every_event_of_both_runs() -> None:
    out = run_bench("bench_channel.py", "--subscriptions", "1", "--events", "60", "--rate", "50",
                    "--rate-events", "20", "--concurrency", "4")
    assert "delivered=60/60" in out and "delivered=20/20" in out, out


def test_bench_contract_control_only_makes_every_trigger_ready() -> None:
    out = run_bench("bench_contract.py", "--control-only", "--triggers", "20")
    assert "20 Triggers Ready, 20 egresses" in out, out


def test_bench_backlog_delivers_the_whole_backlog_once_the_subscriber_is_back() -> None:
    out = run_bench("bench_backlog.py", "--backend", "memory", "--events", "200", "--size", "200")
    assert "delivered=200 of accepted=200 (all)" in out and "duplicates=0" in out, out
