"""Flags every standalone service shares, parsed once at its edge (argparse, with environment defaults)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_common(parser: argparse.ArgumentParser, *, port: int) -> None:
    parser.add_argument("--host", default=os.environ.get("NERVE_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("NERVE_PORT", port)))
    parser.add_argument("--contract", type=Path, default=Path(os.environ.get("NERVE_CONTRACT", ".nerve/contract.json")),
                        help="the contract file control writes (a ConfigMap volume on Kubernetes)")
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", ""))
