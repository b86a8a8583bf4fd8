"""Parallelism and checkpointing: an ARB_* variable that is set wins; otherwise what Flink's own
configuration says (``flink run -D``, config.yaml) stands, and the settings' defaults fill in
what it leaves unset. A local MiniCluster has no such configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flink.job import CHECKPOINT_DIR, CHECKPOINT_INTERVAL, RECOVERY_PATH, runtime_options
from services.common.config import DetectionSettings
from tests.helpers import REPO

NOTHING: dict[str, str] = {}
RETENTION = "execution.checkpointing.externalized-checkpoint-retention"


def test_without_flink_configuration_the_settings_apply(tmp_path: Path) -> None:
    settings = DetectionSettings(checkpoint_dir=str(tmp_path))

    options = runtime_options(settings, NOTHING.get)

    assert options["parallelism.default"] == "1"
    assert options[CHECKPOINT_INTERVAL] == "10000 ms"
    assert options[CHECKPOINT_DIR] == tmp_path.resolve().as_uri()


def test_flink_configuration_wins_over_defaults_but_not_over_set_variables(
        tmp_path: Path) -> None:
    flink = {"parallelism.default": "4", CHECKPOINT_INTERVAL: "7 s",
             CHECKPOINT_DIR: "s3://bucket/checkpoints"}
    defaults = DetectionSettings.from_env({})
    explicit = DetectionSettings.from_env({"ARB_FLINK_PARALLELISM": "2",
                                           "ARB_CHECKPOINT_DIR": str(tmp_path)})

    # Nothing of Flink's is overridden; what it leaves unset is filled in.
    assert runtime_options(defaults, flink.get) == {RETENTION: "RETAIN_ON_CANCELLATION"}
    chosen = runtime_options(explicit, flink.get)
    assert chosen == {"parallelism.default": "2", CHECKPOINT_DIR: tmp_path.resolve().as_uri(),
                      RETENTION: "RETAIN_ON_CANCELLATION"}


def test_a_savepoint_given_to_flink_is_not_replaced_by_the_newest_checkpoint(
        tmp_path: Path) -> None:
    (tmp_path / "job" / "chk-3").mkdir(parents=True)
    (tmp_path / "job" / "chk-3" / "_metadata").write_bytes(b"")
    settings = DetectionSettings(checkpoint_dir=str(tmp_path))

    restored = runtime_options(settings, NOTHING.get)
    assert restored[RECOVERY_PATH] == (tmp_path / "job" / "chk-3").as_uri()
    given = {RECOVERY_PATH: "file:///savepoints/sp-1"}
    assert RECOVERY_PATH not in runtime_options(settings, given.get)


def test_checkpointing_off_sets_no_checkpoint_options() -> None:
    settings = DetectionSettings.from_env({"ARB_CHECKPOINT_INTERVAL_MS": "0"})
    assert runtime_options(settings, NOTHING.get) == {"parallelism.default": "1"}


#: The job's table environment with Flink's configuration as ``flink run -D`` would give it.
PROBE = """
import json, sys
from pyflink.common import Configuration
from pyflink.table import EnvironmentSettings
from flink import job
from services.common.config import DetectionSettings
given = json.loads(sys.argv[1])
if given:
    conf = Configuration()
    for key, value in given.items():
        conf.set_string(key, value)
    made = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    EnvironmentSettings.in_streaming_mode = staticmethod(lambda: made)
env = job.table_environment(DetectionSettings.from_env())
config = env.get_config()
print(json.dumps({k: config.get(k, None) for k in ("parallelism.default",
                                                    "execution.checkpointing.interval")}))
"""


@pytest.mark.integration
@pytest.mark.parametrize(("flink", "variables", "expected"), [
    ({}, {}, {"parallelism.default": "1", "execution.checkpointing.interval": "10000 ms"}),
    ({"execution.target": "remote", "parallelism.default": "4",
      "execution.checkpointing.interval": "7 s"}, {},
     {"parallelism.default": "4", "execution.checkpointing.interval": "7 s"}),
    ({"execution.target": "remote", "parallelism.default": "4"},
     {"ARB_FLINK_PARALLELISM": "3"},
     {"parallelism.default": "3", "execution.checkpointing.interval": "10000 ms"}),
], ids=["local", "flink-run", "flink-run-and-variable"])
def test_the_table_environment_keeps_flinks_configuration(
        flink: dict[str, str], variables: dict[str, str], expected: dict[str, str],
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "FLINK_"))}
    env.update(variables, ARB_CHECKPOINT_DIR=str(tmp_path / "checkpoints"))
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(flink)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
