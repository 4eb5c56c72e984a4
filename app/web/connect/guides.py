"""The connect page's Connection Guide and Prerequisites, read from the connector's own document
(docs/connectors/<ats>.md, sections "## Connection Guide" and "## Prerequisites"), so the page
and the docs cannot say two things (docs/connections.md, "Connect links and the connect page").

The documents are read from the repository (a clone installed with `pip install -e .`, as
README's quick start does) or from `APPLYRELAY_GUIDES_DIR` (the container image copies
docs/connectors there: an installed package has no docs/ beside it); markdown-it renders them
with raw HTML off, so a document can hold no script. A document or section that is missing
gives a page that says so, never an error.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

GUIDES_ENV = "APPLYRELAY_GUIDES_DIR"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "connectors"


def guides_dir() -> Path:
    return Path(os.environ[GUIDES_ENV]) if os.environ.get(GUIDES_ENV) else DOCS


SECTIONS = ("Connection Guide", "Prerequisites")

_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class Guide:
    connection_guide: Markup | None
    prerequisites: Markup | None


def section(text: str, title: str) -> str | None:
    """The body of `## <title>` in a markdown document, up to the next `## ` heading."""
    found = re.search(rf"^## {re.escape(title)}[ \t]*\n(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    return found["body"].strip() if found else None


def _render(markdown: str | None) -> Markup | None:
    if not markdown:
        return None
    return Markup(_markdown.render(markdown))  # noqa: S704 - markdown-it's output with raw HTML disabled: escaped text


@functools.cache
def guide(connector: str) -> Guide:
    """The connector's two sections as HTML (None for one its document lacks)."""
    path = guides_dir() / f"{connector}.md"
    if not re.fullmatch(r"[a-z0-9_]+", connector) or not path.is_file():
        return Guide(None, None)
    text = path.read_text(encoding="utf-8")
    return Guide(*(_render(section(text, title)) for title in SECTIONS))
