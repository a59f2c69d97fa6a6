"""tests/compose runs only under `make compose-test` (it builds images and runs containers for minutes).

`make test` leaves this directory uncollected; `make compose-test` sets NERVE_COMPOSE_TEST=1, and then
nothing here is skipped: a machine where containers cannot run fails the run.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("NERVE_COMPOSE_TEST") == "1" else ["test_*.py"]
