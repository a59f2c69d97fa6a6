"""The architecture is enforced: import-linter's contracts in pyproject.toml must hold.

Layers: nerve -> control | ingress | dispatcher | sources (independent of each other) -> channels -> core;
and the channel backends memory, kafka, nats never import each other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
