#!/usr/bin/env python3
"""The official CloudEvents SDKs that tests/interop runs as producers and subscribers, pinned and cached.

    python scripts/sdks.py fetch      # install / build once; a re-run with everything cached is a no-op
    python scripts/sdks.py paths      # print where the tools are, as JSON (what the tests read)

- JavaScript: npm `cloudevents` (exact pin in tests/interop/js/package.json, every transitive version in
  its package-lock.json), installed with `npm ci` into ~/.cache/nerve/sdk/js. The programs stay in the
  repository and find the package through NODE_PATH.
- Go: `github.com/cloudevents/sdk-go/v2` (exact pin in tests/interop/go/go.mod, hashes in go.sum); the
  programs are built into ~/.cache/nerve/sdk/go/bin with GOPATH, GOMODCACHE and GOCACHE under that cache,
  so nothing outside it is written and nothing is built inside the repository.
- Python: PyPI `cloudevents`, a dependency of Nerve itself (pyproject.toml); only its major version is
  checked here, because the interop code uses the 2.x `cloudevents.core` API.

$NERVE_SDK_CACHE moves the cache. Each part is skipped when a stamp holding the hash of its inputs (the
committed files and the tool's version) matches, which keeps a cached re-run well under a second.
Standard library only, so it runs before any virtualenv exists. Exits 1 with the reason when npm, go or
a registry fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "tests" / "interop"
JS_SRC = INTEROP / "js"
GO_SRC = INTEROP / "go"
CACHE = Path(os.environ.get("NERVE_SDK_CACHE") or Path.home() / ".cache" / "nerve" / "sdk")
JS_CACHE = CACHE / "js"
GO_CACHE = CACHE / "go"
GO_BIN = GO_CACHE / "bin"
GO_PROGRAMS = ("producer", "subscriber")
PYTHON_MAJOR = 2


class SdkError(Exception):
    """An SDK could not be installed or built; the message says why."""


@dataclass(frozen=True)
class Tools:
    node: str
    node_path: str
    go_producer: str
    go_subscriber: str


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    try:
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SdkError(f"{args[0]} is not on the PATH") from None
    except subprocess.TimeoutExpired:
        raise SdkError(f"`{' '.join(args)}` took longer than {timeout:.0f}s") from None
    if result.returncode != 0:
        raise SdkError(f"`{' '.join(args)}` failed (exit {result.returncode}):\n"
                       f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def _which(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SdkError(f"{tool} is not on the PATH: {why}")
    return path


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _fresh(stamp: Path, digest: str, *outputs: Path) -> bool:
    return stamp.is_file() and stamp.read_text() == digest and all(o.exists() for o in outputs)


def fetch_js() -> None:
    node = _which("node", "the JavaScript SDK programs run on Node.js")
    npm = _which("npm", "npm installs the JavaScript SDK from the npm registry")
    manifest, lock = (JS_SRC / "package.json").read_bytes(), (JS_SRC / "package-lock.json").read_bytes()
    # The node version is part of the key: a new Node may need a fresh install of the same lock.
    version = _run([node, "--version"], ROOT).strip()
    digest = _digest(manifest, lock, version.encode())
    stamp = JS_CACHE / ".installed"
    if _fresh(stamp, digest, JS_CACHE / "node_modules" / "cloudevents" / "package.json"):
        return
    JS_CACHE.mkdir(parents=True, exist_ok=True)
    (JS_CACHE / "package.json").write_bytes(manifest)
    (JS_CACHE / "package-lock.json").write_bytes(lock)
    stamp.unlink(missing_ok=True)
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], JS_CACHE)
    pinned = json.loads(manifest)["dependencies"]["cloudevents"]
    installed = json.loads((JS_CACHE / "node_modules" / "cloudevents" / "package.json").read_text())["version"]
    if installed != pinned:
        raise SdkError(f"npm installed cloudevents {installed}, expected the pinned {pinned}")
    stamp.write_text(digest)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GOPATH": str(GO_CACHE / "path"), "GOMODCACHE": str(GO_CACHE / "mod"), "GOCACHE": str(GO_CACHE / "build"),
        # Never fetch another toolchain or change go.mod/go.sum: the pins in the repository are the truth.
        "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -modcacherw", "CGO_ENABLED": "0",
    })
    return env


def fetch_go() -> None:
    go = _which("go", "the Go SDK programs are built with the Go toolchain")
    sources = sorted(p for p in GO_SRC.rglob("*") if p.is_file() and p.suffix in (".go", ".mod", ".sum"))
    env = _go_env()
    version = _run([go, "version"], GO_SRC, env).strip()
    digest = _digest(version.encode(), *(str(p.relative_to(GO_SRC)).encode() + p.read_bytes() for p in sources))
    stamp = GO_CACHE / ".built"
    outputs = [GO_BIN / name for name in GO_PROGRAMS]
    if _fresh(stamp, digest, *outputs):
        return
    GO_BIN.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    _run([go, "mod", "download"], GO_SRC, env)
    for name in GO_PROGRAMS:
        _run([go, "build", "-trimpath", "-o", str(GO_BIN / name), f"./{name}"], GO_SRC, env)
    stamp.write_text(digest)


def check_python() -> None:
    try:
        found = version("cloudevents")
    except PackageNotFoundError:
        raise SdkError(f"the Python cloudevents SDK is not installed in {sys.prefix} (run `make install`)") from None
    if int(found.split(".")[0]) != PYTHON_MAJOR:
        raise SdkError(f"Python cloudevents {found} is installed; the interop tests use the {PYTHON_MAJOR}.x API")


def fetch() -> Tools:
    fetch_js()
    fetch_go()
    return paths()


def paths() -> Tools:
    return Tools(node=shutil.which("node") or "node", node_path=str(JS_CACHE / "node_modules"),
                 go_producer=str(GO_BIN / "producer"), go_subscriber=str(GO_BIN / "subscriber"))


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "fetch"
    try:
        if command == "fetch":
            tools = fetch()
            # The Python SDK lives in the virtualenv; only check it when run from there (make sdk-fetch does).
            if sys.prefix != sys.base_prefix:
                check_python()
            print(f"CloudEvents SDKs ready: JavaScript in {JS_CACHE}, Go programs {tools.go_producer}, "
                  f"{tools.go_subscriber}", flush=True)
        elif command == "paths":
            print(json.dumps(paths().__dict__))
        else:
            print(f"usage: {argv[0]} fetch|paths", file=sys.stderr)
            return 2
    except SdkError as exc:
        print(f"sdks.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
