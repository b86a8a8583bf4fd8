"""Lay out a Flink home for a local MiniCluster run: lib with the Kafka jars and the Prometheus
reporter, and a config that turns the reporter on.

PyFlink ignores FLINK_LIB_DIR unless FLINK_HOME is also set, so all three variables are set
before the Java gateway starts (it starts on the first TableEnvironment).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyflink

from flink.jars import ensure_jars

REPO = Path(__file__).resolve().parent.parent


def prepare_flink_env(metrics_port: int, runtime_dir: Path | None = None) -> dict[str, str]:
    """Create lib/ and conf/ under ``runtime_dir`` and return the environment to run Flink with.

    ``metrics_port`` 0 leaves the reporter off (tests run several jobs at once).
    """
    pyflink_home = Path(pyflink.__file__).resolve().parent
    runtime_dir = runtime_dir or REPO / "var" / f"flink-runtime-{metrics_port}"
    lib_dir, conf_dir = runtime_dir / "lib", runtime_dir / "conf"
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    jars = list((pyflink_home / "lib").glob("*.jar")) + ensure_jars()
    if metrics_port:
        jars += (pyflink_home / "plugins" / "metrics-prometheus").glob("*.jar")
    for jar in jars:
        (lib_dir / jar.name).symlink_to(jar)
    shutil.copytree(pyflink_home / "conf", conf_dir, dirs_exist_ok=True)
    base = (pyflink_home / "conf" / "config.yaml").read_text()
    if metrics_port:
        base += (
            "\nmetrics.reporter.prom.factory.class: "
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory\n"
            f"metrics.reporter.prom.port: {metrics_port}\n"
        )
    (conf_dir / "config.yaml").write_text(base)
    return {
        "FLINK_HOME": str(pyflink_home),
        "FLINK_LIB_DIR": str(lib_dir),
        "FLINK_CONF_DIR": str(conf_dir),
    }


def apply_flink_env(metrics_port: int) -> None:
    os.environ.update(prepare_flink_env(metrics_port))
