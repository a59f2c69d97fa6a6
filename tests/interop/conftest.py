"""The SDK tools for the interop tests, from the project's own installer (scripts/sdks.py).

`make test` runs `make sdk-fetch` first; here the same installer runs again (a cached run is a no-op) so a
bare `pytest tests/interop` works too. When npm, go or a registry fails, every interop test fails with
the installer's reason: they never skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop.sdk import Tools

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="session")
def tools() -> Tools:
    installer = SCRIPTS / "sdks.py"
    fetched = subprocess.run([sys.executable, str(installer), "fetch"], capture_output=True, text=True, timeout=900)
    if fetched.returncode != 0:
        pytest.fail(f"the CloudEvents SDKs could not be had (scripts/sdks.py fetch):\n{fetched.stderr[-3000:]}",
                    pytrace=False)
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    import sdks

    found = sdks.paths()
    return Tools(node=found.node, node_path=found.node_path, go_producer=found.go_producer,
                 go_subscriber=found.go_subscriber)
