"""tests/conftest.py's unraisable hook, in a pytest run of its own: an asyncio transport that one test leaks
and the garbage collector finalizes during a later, synchronous test does not fail that later test; the
run's summary names it instead. Without the hook the later test fails (the second case)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LEAKY = '''
import asyncio
import gc

kept = []


def test_leaks_a_connection():
    async def connect():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        kept.append(writer)  # never closed: outlives this test's loop
        server.close()

    asyncio.run(connect())


def test_a_later_synchronous_test():
    kept.clear()
    gc.collect()
    assert True
'''


def _run(tmp_path: Path, conftest: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_the_later_test_passes_and_the_summary_names_the_leftover(tmp_path: Path) -> None:
    done = _run(tmp_path, "from tests.conftest import pytest_configure, pytest_terminal_summary  # noqa: F401\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
    assert "asyncio leftovers finalized after their event loop closed" in done.stdout, done.stdout
    assert "unclosed transport" in done.stdout or "unclosed <socket" in done.stdout, done.stdout


def test_without_the_hook_the_later_test_fails(tmp_path: Path) -> None:
    done = _run(tmp_path, "")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "test_a_later_synchronous_test" in done.stdout and "1 failed" in done.stdout, done.stdout
