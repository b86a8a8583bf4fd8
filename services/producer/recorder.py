"""Record mode: every frame of every live connection, written to files in the fixtures format.

One JSON object per line, as in ``../shared/fixtures/exchanges`` (see its README)::

    {"exchange":"binance","recv_ts_ns":1723161254087891268,"raw":"{\\"stream\\":...}"}

``raw`` is the text frame exactly as received (a REST book snapshot the feed fetched is a line
too, with ``"source":"rest"`` and the request's ``url``, the body as ``raw``: the replay hands
it to the books at its place in time); ``recv_ts_ns`` the local wall clock when the feed
loop got it. Each venue gets its own files, ``<venue>-0001.jsonl``, ``<venue>-0002.jsonl`` ...,
a new one once the current one would grow past the size limit. ``recording.json`` beside them
says which venues and markets were recorded (venue symbol -> canonical symbol), so a replay of
the folder maps products the same way and, because the files were recorded together, keeps
their relative timing instead of aligning them (see ``replay.recordings_in``).

The recorder is a tap on a feed's frame stream, ``Feed(..., tap=recorder.tap(venue))``: it sees
each frame before the frame processor does, and the feed itself runs exactly as live.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from services.common.messages import Quote, Trade
from services.producer.feed import FrameTap, RestTap

log = structlog.get_logger(__name__)

MANIFEST = "recording.json"
MANIFEST_FORMAT = "arb-recording"
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024


class FrameRecorder:
    """Appends frames to per-venue files, rotating by size; flushes each line (a crash loses
    at most the frame being written)."""

    def __init__(
        self,
        out_dir: str | Path,
        symbol_maps: Mapping[str, Mapping[str, str]],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_file_bytes <= 0:
            raise ValueError("max_file_bytes must be > 0")
        self.out_dir = Path(out_dir)
        self.max_file_bytes = max_file_bytes
        self.clock_ns = clock_ns
        self.frames = 0
        self.files: list[Path] = []
        self._open: dict[str, tuple[IO[str], int, int]] = {}  # venue -> (file, bytes, index)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": MANIFEST_FORMAT,
            "v": 1,
            "started_utc": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "venues": {venue: dict(mapping) for venue, mapping in sorted(symbol_maps.items())},
        }
        (self.out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    def tap(self, exchange: str) -> FrameTap:
        """The feed tap that writes every frame of ``exchange``'s feed."""
        return functools.partial(self.write, exchange)

    def rest_tap(self, exchange: str) -> RestTap:
        """The feed's REST tap: every book snapshot ``exchange``'s feed fetched."""
        return functools.partial(self.write_rest, exchange)

    def write_rest(self, exchange: str, url: str, body: str) -> None:
        """One REST response, as the fixtures hold them (``source: "rest"``, ``url``)."""
        self._write(exchange, {"exchange": exchange, "recv_ts_ns": self.clock_ns(),
                               "source": "rest", "url": url, "raw": body})

    def write(self, exchange: str, raw: str | bytes) -> None:
        """One frame, stamped with the recorder's clock, appended to the venue's file."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        self._write(exchange, {"exchange": exchange, "recv_ts_ns": self.clock_ns(), "raw": text})

    def _write(self, exchange: str, obj: dict[str, object]) -> None:
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        size = len(line.encode())
        fh, written, index = self._open.get(exchange, (None, 0, 0))
        if fh is None or (written and written + size > self.max_file_bytes):
            if fh is not None:
                fh.close()
            index += 1
            path = self.out_dir / f"{exchange}-{index:04d}.jsonl"
            fh, written = path.open("w", encoding="utf-8"), 0
            self.files.append(path)
            log.info("recording_file_opened", exchange=exchange, file=str(path))
        fh.write(line)
        fh.flush()
        self._open[exchange] = (fh, written + size, index)
        self.frames += 1

    def close(self) -> None:
        for fh, _, _ in self._open.values():
            fh.close()
        self._open.clear()


class DiscardSink:
    """Record mode needs no broker: parsed records only feed the metrics, then are dropped."""

    def __init__(self) -> None:
        self.records = 0

    def publish(self, record: Quote | Trade) -> bool:
        self.records += 1
        return True
