"""Which .env a process reads: the working directory's, or the one ENV_FILE names; under the
tests none at all, so a developer's .env (and its real webhook) never reaches a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

#: Prints the webhook a service would see after reading its .env.
READ_DOTENV = ("import os; from services.common.config import load_dotenv; load_dotenv(); "
               "print(os.environ.get('DISCORD_WEBHOOK_URL', 'unset'))")


def webhook_seen(cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", READ_DOTENV], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def without_webhook() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_WEBHOOK_URL"}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_tests_read_no_env_file() -> None:
    assert os.environ["ENV_FILE"] == os.devnull


def test_a_child_of_a_test_ignores_the_env_file_where_it_runs(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_WEBHOOK_URL=https://discord.example/api/webhooks/1/x\n")

    assert webhook_seen(tmp_path, without_webhook()) == "unset"


def test_the_working_directorys_env_file_or_the_one_env_file_names(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_WEBHOOK_URL=https://here.example/hook\n")
    (tmp_path / "other.env").write_text("DISCORD_WEBHOOK_URL=https://other.example/hook\n")
    env = without_webhook()
    env.pop("ENV_FILE")

    assert webhook_seen(tmp_path, env) == "https://here.example/hook"
    assert webhook_seen(tmp_path, {**env, "ENV_FILE": "other.env"}) == \
        "https://other.example/hook"
