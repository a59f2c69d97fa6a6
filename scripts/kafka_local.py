#!/usr/bin/env python3
"""A real single-node Apache Kafka (KRaft) on 127.0.0.1, fetched from Maven Central and run with local Java.

    python scripts/kafka_local.py fetch                      # jars into the cache (once; reused after)
    python scripts/kafka_local.py start --data-dir DIR       # detached; prints the bootstrap address
    python scripts/kafka_local.py stop --data-dir DIR
    python scripts/kafka_local.py run [--port 9092]          # foreground, for `make kafka`
    NERVE_KAFKA_SASL_SSL=1 python scripts/kafka_local.py run  # also a SASL_SSL listener (see SECURE_USERS)

With `secure=True` (what the test fixtures start) the broker has a second listener, SASL_SSL, beside
the PLAINTEXT one every other test uses, and a third, SSL with client certificates required (mutual
TLS, DIR/pki/client.crt and client.key are a client's): a CA and a broker certificate for 127.0.0.1 are made into
DIR/pki with the `cryptography` library (scripts/_certs.py, the only part that is not standard
library), SASL PLAIN users are in the listener's JAAS config and SCRAM-SHA-256/512 credentials are
written into the KRaft metadata when the storage is formatted (`--add-scram`). One JVM serves both,
so the secure listener costs no second start-up.

The jars of `org.apache.kafka:kafka_2.13` and its runtime dependencies are copied by Maven into a cache
outside the repository (~/.cache/nerve/kafka-<version>, or $NERVE_KAFKA_CACHE). Nothing downloaded is
committed. Standard library only, so it runs before any virtualenv exists; tests import `start()`.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from _server import Launcher, ServerProcess, free_port, port_in_use, read_state, wait_ready, write_state

VERSION = "4.1.1"
CACHE = Path(os.environ.get("NERVE_KAFKA_CACHE") or Path.home() / ".cache" / "nerve" / f"kafka-{VERSION}")
LIBS = CACHE / "libs"
STAMP = CACHE / ".fetched"
HEAP = os.environ.get("NERVE_KAFKA_HEAP", "512m")
STATE = "kafka.json"
SECURE_USERS = {
    "PLAIN": ("plain-user", "plain-secret"),
    "SCRAM-SHA-256": ("scram-user", "scram-secret"),
    "SCRAM-SHA-512": ("scram-user", "scram-secret"),
}
"""(user, password) per SASL mechanism on the SASL_SSL listener: fixed, for local tests only."""

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.nerve</groupId>
  <artifactId>local-kafka</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J = """status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


class KafkaError(Exception):
    """The local Kafka could not be fetched or started; the message says why."""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaError("java is not on the PATH: install a JDK 17+ (Kafka 4 needs Java 17)")
    return java


def fetch() -> Path:
    """Copy Kafka's jars into the cache with Maven; a no-op when they are there already."""
    if STAMP.exists() and any(LIBS.glob("kafka_2.13-*.jar")):
        return LIBS
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaError("mvn is not on the PATH: Maven fetches Kafka's jars from Maven Central")
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "pom.xml").write_text(POM)
    print(f"fetching Apache Kafka {VERSION} from Maven Central into {LIBS} ...", file=sys.stderr, flush=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(CACHE / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={LIBS}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    if result.returncode != 0 or not any(LIBS.glob("kafka_2.13-*.jar")):
        raise KafkaError(f"mvn could not fetch Kafka {VERSION}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    STAMP.write_text(VERSION)
    return LIBS


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("closed mid-response")
        chunks += chunk
    return chunks


def _answers_metadata(port: int) -> bool:
    """True when the broker answers a Metadata request listing itself (not just a TCP accept).

    A KRaft broker serves requests only once it has caught up with the metadata log and is unfenced;
    a broker list with at least one entry then means producers and consumers can use it.
    """
    client = b"nerve-probe"
    # Request header v1 (api key 3 = Metadata, version 1, correlation id 7, client id), then an empty
    # topic array: brokers only.
    body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(5)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 8:
        return False
    correlation, brokers = struct.unpack(">ii", response[:8])
    return bool(correlation == 7 and brokers >= 1)


@dataclass
class KafkaProcess(ServerProcess):
    data_dir: Path
    port: int
    controller_port: int
    sasl_ssl_port: int = 0
    """The SASL_SSL listener's port; 0 when started without `secure`."""
    mtls_port: int = 0
    """The SSL listener's port (client certificates required); 0 when started without `secure`."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        if not self.sasl_ssl_port:
            raise KafkaError(f"the Kafka in {self.data_dir} was started without its SASL_SSL listener")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        if not self.mtls_port:
            raise KafkaError(f"the Kafka in {self.data_dir} was started without its SSL listener")
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def ca_pem(self) -> str:
        """The PEM of the CA that signed the secure listeners' certificate (and the client's)."""
        return (self.data_dir / "pki" / "ca.crt").read_text()

    @property
    def client_pems(self) -> tuple[str, str]:
        """(certificate, private key) of a client the SSL listener accepts."""
        pki = self.data_dir / "pki"
        return (pki / "client.crt").read_text(), (pki / "client.key").read_text()


def _jaas_plain() -> str:
    user, password = SECURE_USERS["PLAIN"]
    return f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}="{password}";'


def _secure_properties(data_dir: Path) -> list[str]:
    from _certs import ensure  # needs `cryptography`: imported only for the secure listener

    pki = ensure(data_dir / "pki", "kafka-local")
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return [
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={_jaas_plain()}",
        f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
        "listener.name.sasl_ssl.ssl.keystore.type=PEM",
        f"listener.name.sasl_ssl.ssl.keystore.location={pki.server_bundle}",
        "listener.name.sasl_ssl.ssl.client.auth=none",
        "listener.name.ssl.ssl.keystore.type=PEM",
        f"listener.name.ssl.ssl.keystore.location={pki.server_bundle}",
        "listener.name.ssl.ssl.truststore.type=PEM",
        f"listener.name.ssl.ssl.truststore.location={pki.ca_cert}",
        "listener.name.ssl.ssl.client.auth=required",
    ]


def _properties(data_dir: Path, port: int, controller_port: int, sasl_ssl_port: int = 0, mtls_port: int = 0) -> str:
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    advertised = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if sasl_ssl_port:
        secure = f",SASL_SSL://127.0.0.1:{sasl_ssl_port},SSL://127.0.0.1:{mtls_port}"
        listeners += secure
        advertised += secure
        protocols += ",SASL_SSL:SASL_SSL,SSL:SSL"
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={protocols}",
        *(_secure_properties(data_dir) if sasl_ssl_port else []),
        f"log.dirs={data_dir / 'logs'}",
        # One node: every internal topic has one replica, and group joins need not wait for more members.
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "num.partitions=1",
        "log.segment.bytes=67108864",
        "",
    ])


def start(data_dir: Path, port: int | None = None, *, timeout: float = 90.0,
          secure: bool | None = None) -> KafkaProcess:
    """Start (or restart, keeping its data) a broker in `data_dir`; returns once it answers requests.
    `secure` adds the SASL_SSL listener (default: $NERVE_KAFKA_SASL_SSL, or what the last start had)."""
    libs = fetch()
    java = _java()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    state_file = data_dir / STATE
    previous = read_state(state_file)
    if previous and KafkaProcess(previous["pid"], data_dir, previous["port"], previous["controller_port"]).alive() \
            and _answers_metadata(previous["port"]):
        raise KafkaError(f"a Kafka from {data_dir} is already running (pid {previous['pid']}) on "
                         f"{previous['bootstrap']}; stop it first")
    port = port or previous.get("port") or free_port()
    controller_port = previous.get("controller_port") or free_port()
    while controller_port == port:
        controller_port = free_port()
    if secure is None:
        secure = bool(os.environ.get("NERVE_KAFKA_SASL_SSL")) or bool(previous.get("sasl_ssl_port"))
    sasl_ssl_port = mtls_port = 0
    if secure:
        sasl_ssl_port = previous.get("sasl_ssl_port") or free_port()
        while sasl_ssl_port in (port, controller_port):
            sasl_ssl_port = free_port()
        mtls_port = previous.get("mtls_port") or free_port()
        while mtls_port in (port, controller_port, sasl_ssl_port):
            mtls_port = free_port()
    # Another server on the port would answer the readiness probe in this broker's place.
    for taken in (port, controller_port, *([sasl_ssl_port, mtls_port] if sasl_ssl_port else [])):
        if port_in_use(taken):
            raise KafkaError(f"port {taken} on 127.0.0.1 is in use (another Kafka?); pick another with --port")
    config = data_dir / "server.properties"
    config.write_text(_properties(data_dir, port, controller_port, sasl_ssl_port, mtls_port))
    log = data_dir / "kafka.log"
    (data_dir / "log4j2.properties").write_text(LOG4J.format(log=log))
    classpath = f"{libs}/*"
    if not (data_dir / "logs" / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            [java, "-cp", classpath, f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config),
             *_scram_arguments()],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise KafkaError(f"formatting the KRaft storage failed:\n{result.stdout}{result.stderr}")
    with (data_dir / "kafka.out").open("ab") as out:
        proc = subprocess.Popen(
            [java, f"-Xmx{HEAP}", f"-Xms{HEAP}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    kafka = KafkaProcess(proc.pid, data_dir, port, controller_port, sasl_ssl_port, mtls_port, proc=proc)
    write_state(state_file, bootstrap=kafka.bootstrap, pid=proc.pid, port=port, controller_port=controller_port,
                sasl_ssl_port=sasl_ssl_port, mtls_port=mtls_port)
    why = wait_ready(kafka, lambda: _answers_metadata(port), timeout=timeout, interval=0.2)
    if why is not None:
        tail = log.read_text()[-3000:] if log.exists() else ""
        out_tail = (data_dir / "kafka.out").read_text()[-2000:]
        raise KafkaError(f"Kafka {why} on {kafka.bootstrap}; ready means it answers a Metadata request:\n"
                         f"{tail}\n{out_tail}")
    return kafka


def from_state(data_dir: Path) -> KafkaProcess:
    """The broker a previous `start` left running in `data_dir` (for `stop` from another process)."""
    state_file = data_dir / STATE
    state = read_state(state_file)
    if not state:
        raise KafkaError(f"no Kafka was started in {data_dir} ({state_file} is missing)")
    return KafkaProcess(state["pid"], data_dir, state["port"], state["controller_port"], state.get("sasl_ssl_port", 0),
                        state.get("mtls_port", 0))


def _scram_arguments() -> list[str]:
    """The SCRAM credentials KRaft keeps in its metadata log: written when the storage is formatted,
    so they exist before the broker serves its first request (always, so a later secure restart has them)."""
    return [arg for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for arg in ("--add-scram", "{}=[name={},password={}]".format(mechanism, *SECURE_USERS[mechanism]))]


LAUNCHER = Launcher(
    doc=__doc__ or "", dir_flag="--data-dir", default_dir=Path(".nerve/kafka"), default_port=9092, error=KafkaError,
    start=start, address=lambda kafka: kafka.bootstrap, from_state=from_state,
    banner=lambda kafka, data: f"Kafka {VERSION} is up on {kafka.bootstrap}"
    + (f", SASL_SSL on {kafka.sasl_ssl_bootstrap} and SSL with client certificates on {kafka.mtls_bootstrap} "
       f"(CA {data}/pki/ca.crt)" if kafka.sasl_ssl_port else "")
    + f" (data in {data}); Ctrl-C stops it",
    extra={"fetch": ("fetch the jars into the cache", fetch)},
)


if __name__ == "__main__":
    sys.exit(LAUNCHER.main())
