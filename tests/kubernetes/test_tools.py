"""scripts/k8s_tools.py: the module it writes to build kube-apiserver carries k8s.io/kubernetes's staging
replaces pointed at the published modules, and the built tools are the pinned releases."""

from __future__ import annotations

import subprocess

from tests.support.launchers import script

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	github.com/some/fork => github.com/other/fork v1.2.3
)
"""


def test_staging_replaces_point_at_the_published_release() -> None:
    tools = script("k8s_tools")
    minor_patch = tools.KUBERNETES.split(".", 1)[1]
    assert tools.staging_replaces(UPSTREAM) == [("k8s.io/api", f"v0.{minor_patch}"),
                                                ("k8s.io/client-go", f"v0.{minor_patch}")]


def test_the_built_tools_are_the_pinned_releases() -> None:
    tools = script("k8s_tools")
    helm = subprocess.run([tools.binary("helm"), "version", "--short"], capture_output=True, text=True, check=True)
    assert helm.stdout.startswith(f"v{tools.HELM}")
    apiserver = subprocess.run([tools.binary("kube-apiserver"), "--version"], capture_output=True, text=True,
                               check=True)
    assert apiserver.stdout.strip() == f"Kubernetes v{tools.KUBERNETES}"
    etcd = subprocess.run([tools.binary("etcd"), "--version"], capture_output=True, text=True, check=True)
    assert etcd.stdout.startswith("etcd Version: 3.5")
