"""The runbook page (``/runbook``): docs/runbook.md, one section per alert.

Every alert's ``runbook_url`` is ``ARB_RUNBOOK_URL`` (by default this page) + ``#<alert name in
lower case>``. Each heading is drawn with that anchor, the one GitHub gives the same heading in
the Markdown file (Streamlit's own would be ``feed-down`` for ``FeedDown``), and Streamlit scrolls
to the heading the URL names, so the link in a Discord message opens the alert's section. The
dashboard runs in the local run and under compose alike, so the link works in both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

#: docs/runbook.md of this checkout (or of the image, which copies it to the same place).
RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*$")
_DRAW = {1: st.title, 2: st.header, 3: st.subheader}


def anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: FeedDown -> feeddown."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def blocks(text: str) -> Iterator[tuple[int, str]]:
    """(heading level, heading) and (0, Markdown between headings), in order; a ``#`` line in
    a fenced code block is code, not a heading."""
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        fenced ^= line.lstrip().startswith("```")
        match = None if fenced else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        if "".join(body).strip():
            yield 0, "\n".join(body)
        body = []
        yield len(match[1]), match[2]
    if "".join(body).strip():
        yield 0, "\n".join(body)


st.set_page_config(page_title="Runbook", layout="wide")
try:
    text = RUNBOOK.read_text(encoding="utf-8")
except OSError as exc:
    st.title("Runbook")
    st.error(f"The runbook ({RUNBOOK}) cannot be read: {exc.strerror}")
else:
    for level, content in blocks(text):
        if level:
            _DRAW[level](content, anchor=anchor(content))
        else:
            st.markdown(content)
