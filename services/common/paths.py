"""Where the files a local run needs are, for a checkout and for an installed package alike.

Each is looked up in the working directory first, then in the checkout the package was
installed from (an editable install, or ``python -m`` in the checkout): what is not Python (the
Prometheus configuration, the recordings) is not in the wheel. Flink's SQL files are package
data (flink/sql/); state (``var/``) is always under the working directory.
"""

from __future__ import annotations

from pathlib import Path

#: The folder holding services/ and flink/: the checkout, or site-packages once installed.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: Recordings replayed when ARB_FIXTURES_DIR is unset, in the order they are looked for.
RECORDINGS = ("../shared/fixtures/exchanges", "data/recordings")


def bases() -> tuple[Path, ...]:
    """The working directory, then the package's checkout."""
    return tuple(dict.fromkeys((Path.cwd(), PACKAGE_ROOT)))


def find(relative: str) -> Path | None:
    """``relative`` under the first base that has it, or None."""
    for base in bases():
        if (base / relative).exists():
            return (base / relative).resolve()
    return None


def var_dir() -> Path:
    """State of local runs (broker log, Prometheus data, its generated configuration)."""
    return Path.cwd() / "var"


def recordings_dir(configured: str | None) -> Path | None:
    """ARB_FIXTURES_DIR if set, else the first of RECORDINGS found (see :func:`find`)."""
    if configured:
        return Path(configured)
    for relative in RECORDINGS:
        if (found := find(relative)) is not None and found.is_dir():
            return found
    return None
