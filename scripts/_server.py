"""What the local Kafka and NATS launchers share: a detached server process and a foreground loop.

Standard library only. A server runs in its own session (process group) so a signal reaches all of
it, and the Popen handle is kept so the child is reaped here rather than reported as leaked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    pid: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, kw_only=True)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM for a clean shutdown; SIGKILL if it has not ended in time."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive():
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing flushed."""
        self._signal(signal.SIGKILL)
        for _ in range(200):
            if not self.alive():
                return
            time.sleep(0.05)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


def run_foreground(server: ServerProcess, banner: str) -> None:
    """Print the banner and keep the server up until Ctrl-C or SIGTERM, then stop it."""
    print(banner, flush=True)
    # SIGTERM (systemd, `timeout`, a closing terminal) stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while server.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
