"""A short-lived local Prometheus for tests: loopback only, a free port, a throwaway TSDB.

Also: finding the Prometheus binaries (skip locally, fail under CI), and turning the project's
scrape config into one for a stack running on other ports.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import requests
import yaml

#: Debian/Ubuntu package that puts both binaries on PATH.
APT_PACKAGE = "prometheus"


def in_ci() -> bool:
    """CI runs must not skip: a missing tool there is a broken setup, not an optional extra."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def require_binary(name: str) -> str:
    """Path to ``name``; skips locally when absent, fails under CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH (install the {APT_PACKAGE!r} apt package)"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so this is a failure, not a skip")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retarget_config(
    config_path: Path,
    targets: Mapping[str, Sequence[str]],
    interval: str = "1s",
) -> dict[str, Any]:
    """``config_path`` (a Prometheus config) with each job scraping ``targets[job]`` instead.

    Jobs not in ``targets`` are dropped; a job in ``targets`` that the file does not define
    raises ValueError, so a renamed job cannot go unnoticed. Scrapes and rule evaluations run
    every ``interval``, and rule_files become absolute (Prometheus reads them relative to the
    config file, which the caller writes elsewhere).
    """
    config = copy.deepcopy(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    unknown = sorted(set(targets) - set(jobs))
    if unknown:
        raise ValueError(f"{config_path.name} defines no job {unknown}; it has {sorted(jobs)}")
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": list(targets.get(name, []))}]
    config["scrape_configs"] = [jobs[name] for name in jobs if name in targets]
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval,
    }
    config["rule_files"] = [
        str((config_path.parent / pattern).resolve()) for pattern in config.get("rule_files", [])
    ]
    return config


class PrometheusServer:
    """Runs ``prometheus`` with the given config (default: nothing to scrape) until closed.

    ``port`` is chosen at construction, so a config that scrapes the server itself can be set
    on ``config`` before entering.
    """

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

    def query_range(self, promql: str, seconds: float, step_s: float) -> dict[str, Any]:
        """The /api/v1/query_range answer for the last ``seconds``, as a graph panel asks."""
        end = time.time()
        response = requests.post(
            f"{self.url}/api/v1/query_range",
            data={"query": promql, "start": end - seconds, "end": end, "step": step_s},
            timeout=10,
        )
        return dict(response.json())

    def targets(self) -> list[dict[str, Any]]:
        """The /api/v1/targets active targets, with each one's health and last error."""
        response = requests.get(f"{self.url}/api/v1/targets", timeout=10)
        return list(response.json()["data"]["activeTargets"])
