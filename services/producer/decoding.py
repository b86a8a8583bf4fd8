"""JSON text frame -> Python object: orjson's speed with exactly the standard library's answers.

Decoding is most of the cost of a frame, and orjson decodes one about three times faster than
``json.loads``. But the two do not read the same language, and the parsers' rejection reasons
depend on the difference:

- ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond a double (``1e400``): json reads them
  as nan/inf (which the parsers then reject as ``bad_price``/``bad_size``); orjson raises.
- Integers outside 64 bits: json reads the exact int (a huge price is ``bad_price``, a huge
  trade id is kept digit for digit); orjson returns a rounded *float*, silently.
- Lone surrogates (``"\\ud800"``), a UTF-8 BOM or UTF-16/32 bytes: json accepts them, orjson
  does not.

So orjson reads a frame first; a frame it rejects, or one with a run of 19 or more digits (the
only text where its value can differ from json's: the shortest integer outside 64 bits has 19
digits), is decoded again by json, and json's result or error is the answer. Every frame
therefore decodes to what ``json.loads`` gives, or fails with ``not_json`` where it failed, with
json's own message as the detail. One deliberate difference: nesting too deep for json's
recursion limit was a RecursionError that escaped the parser (and stopped the feed); it is
``not_json`` now, as orjson's depth limit is.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from services.common.exceptions import RecordError

_fast_loads = orjson.loads
_FastError = orjson.JSONDecodeError
#: bytes.translate table: digits stay digits ("0"), every other byte becomes a space
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
#: an integer literal of this many digits may lie outside 64 bits (-9223372036854775809)
_LONG_DIGIT_RUN = b"0" * 19


def stdlib_decode(raw: str | bytes) -> Any:
    """``json.loads`` with its errors as RecordError('not_json'): the reference decoder."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("not_json", str(exc)[:120]) from exc
    except RecursionError:
        raise RecordError("not_json", "nested too deeply") from None


#: (the last frame decoded, its object): the frame processor reads a frame's depth and its
#: records through two parsers, which decode it once between them (an identity check; the
#: frame is held here, so its id cannot be reused). Callers must not mutate what they get.
_last: tuple[Any, Any] = (None, None)


def decode(raw: str | bytes) -> Any:
    """JSON text -> Python object, exactly as :func:`stdlib_decode` (or its RecordError)."""
    global _last
    last = _last
    if last[0] is raw:
        return last[1]
    msg = _decode(raw)
    _last = (raw, msg)
    return msg


def _decode(raw: str | bytes) -> Any:
    try:
        msg = _fast_loads(raw)
    except _FastError:
        return stdlib_decode(raw)
    # orjson accepted the text, so a str holds no lone surrogate and encodes as UTF-8.
    text = raw.encode() if isinstance(raw, str) else raw
    if _LONG_DIGIT_RUN in text.translate(_DIGITS_ONLY):
        return stdlib_decode(raw)
    return msg
