"""Fetch the Flink Kafka connector jars at setup, into an ignored folder (never committed).

The jars are the official Apache builds of flink-connector-kafka 4.0.1-2.0 and kafka-clients
3.9.1, shipped inside the PyPI wheel ``shigawire-apache-flink-libraries``. Installing that wheel
would also drop Flink 2.0 core jars next to PyFlink 2.3's own, so only the two are extracted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".flink-lib"


def jar_paths(lib_dir: Path = DEFAULT_DIR) -> list[Path]:
    return [lib_dir / name for name in JARS]


def ensure_jars(lib_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Download the wheel once with pip and extract the two jars; a no-op when present."""
    paths = jar_paths(lib_dir)
    if all(p.is_file() for p in paths):
        return paths
    lib_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name in JARS:
                (lib_dir / name).write_bytes(zf.read(f"pyflink/lib/{name}"))
    return paths


if __name__ == "__main__":
    for path in ensure_jars():
        print(path)
