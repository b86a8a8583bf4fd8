"""A short-lived local Prometheus for tests: loopback only, a free port, a throwaway TSDB."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """Runs ``prometheus`` with the given config (default: nothing to scrape) until closed."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        config: dict[str, Any] | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = config if config is not None else {"global": {"scrape_interval": "5s"}}
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _wait_ready(self) -> None:
        assert self._proc is not None, "set by __enter__"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited at start:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready in {self.start_timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rule_groups(self) -> list[dict[str, Any]]:
        """The /api/v1/rules groups, with each rule's health and last error."""
        response = requests.get(f"{self.url}/api/v1/rules", timeout=10)
        return list(response.json()["data"]["groups"])

    def query(self, promql: str) -> dict[str, Any]:
        """The /api/v1/query answer (status success or error) for an instant query now."""
        response = requests.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=10)
        return dict(response.json())
