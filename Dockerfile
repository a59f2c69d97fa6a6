# Nerve: one slim, non-root image for every service; the command picks the part:
#   nerve control | nerve ingress | nerve dispatcher | nerve sources | nerve up | nerve display
#
#   docker build -t nerve .                                     # any Debian bookworm base will do
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t nerve .   # behind a TLS proxy
#
# BASE defaults to Debian's official bookworm-slim; scripts/containers.sh builds from a bookworm made
# locally with debootstrap (no registry reachable), passing --build-arg BASE=localhost/nerve-debian:bookworm.
# Dependencies are the versions constraints.txt pins (the same ones `make install` and CI use).
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/nerve
COPY constraints.txt /src/constraints.txt
# The dependencies first, in a layer of their own: a code change rebuilds only the layer below.
# An optional build secret `ca` is a CA bundle for pip (a TLS-intercepting proxy's CA is in it).
COPY pyproject.toml /src/pyproject.toml
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/nerve/bin/pip install -q --no-cache-dir --disable-pip-version-check -c /src/constraints.txt \
      'setuptools>=68' wheel \
 && /opt/nerve/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml','rb'))['project']['dependencies']))" > /src/requirements.txt \
 && /opt/nerve/bin/pip install -q --no-cache-dir --disable-pip-version-check -c /src/constraints.txt -r /src/requirements.txt
COPY README.md /src/README.md
COPY core /src/core
COPY channels /src/channels
COPY control /src/control
COPY ingress /src/ingress
COPY dispatcher /src/dispatcher
COPY sources /src/sources
COPY nerve /src/nerve
RUN /opt/nerve/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation /src \
 && /opt/nerve/bin/pip uninstall -q -y pip setuptools wheel \
 && find /opt/nerve -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* \
 && groupadd --system --gid 10001 nerve \
 && useradd --system --uid 10001 --gid nerve --home-dir /var/lib/nerve --create-home nerve \
 && install -d -o nerve -g nerve -m 0700 /var/lib/nerve/state
COPY --from=build /opt/nerve /opt/nerve
ENV PATH=/opt/nerve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NERVE_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/nerve
EXPOSE 8080 8081 9090 9091
# Every Nerve service answers /healthz on the port NERVE_PORT names (compose sets it per service);
# no curl in the image, so Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NERVE_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["nerve"]
CMD ["--help"]
