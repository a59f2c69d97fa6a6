"""A producer as a user writes one for a SinkBinding or a ContainerSource: standard library only, run as
`python tests/support/producer.py [--count N] [--period S] [--type T] [--exit-code C]`.

It reads Knative's receive-adapter contract from its environment (K_SINK, K_CE_OVERRIDES), prints the
variables a test looks at as one JSON line (`ENV {...}`), then POSTs CloudEvents in binary mode to K_SINK,
each with the extensions of K_CE_OVERRIDES, its own pid (extension `pid`, so a test can tell a restarted
process) and, as data, its argv and those variables. `--count 0` sends until it is stopped. Without
K_SINK it exits 1, as Knative's heartbeats sample does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
import uuid

SHOWN = ("K_SINK", "K_CE_OVERRIDES", "NAME", "NAMESPACE", "GREETING", "POD_NAME")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--period", type=float, default=0.2)
    parser.add_argument("--type", default="dev.nerve.test.produced")
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args()
    env = {k: os.environ[k] for k in SHOWN if k in os.environ}
    print("ENV " + json.dumps(env, sort_keys=True), flush=True)
    sink = os.environ.get("K_SINK")
    if not sink:
        print("K_SINK is not set: no sink to send to", file=sys.stderr, flush=True)
        return 1
    overrides = json.loads(os.environ.get("K_CE_OVERRIDES") or "{}")
    sent = 0
    while args.count == 0 or sent < args.count:
        sent += 1
        headers = {"Ce-Specversion": "1.0", "Ce-Id": str(uuid.uuid4()), "Ce-Type": args.type,
                   "Ce-Source": "/nerve/tests/producer", "Ce-Pid": str(os.getpid()),
                   "Content-Type": "application/json"}
        headers.update({f"Ce-{name}": value for name, value in (overrides.get("extensions") or {}).items()})
        body = json.dumps({"seq": sent, "argv": sys.argv[1:], "env": env}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(sink, body, headers, method="POST"), timeout=5) as r:
                print(f"sent {sent}: {r.status}", flush=True)
        except OSError as exc:
            print(f"send {sent} failed: {exc}", flush=True)
        if args.count == 0 or sent < args.count:
            time.sleep(args.period)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
