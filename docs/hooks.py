"""MkDocs hooks (mkdocs.yml ``hooks:``): a page may include a Markdown file of the repository
root — BENCHMARKS.md, which `make benchmark` regenerates in place — instead of a copy of it.

A line ``<!-- include: NAME -->`` in a page is replaced by the root file ``NAME``, its links
made relative to the docs folder (the including pages live at its top): ``docs/figures/roc.png``
→ ``figures/roc.png``, and a link to an included root file goes to the page that includes it
(``BENCHMARKS.md`` → ``benchmarks.md``). README.md is the quick start, BENCHMARKS.md the
benchmarks page. `mkdocs serve` rebuilds when one changes.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"^<!-- include: (?P<name>[\w.-]+) -->$", re.MULTILINE)
#: Root file → the page that includes it.
PAGES = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md"}
#: A Markdown link or image target into docs/ or to an included root file.
LINK = re.compile(r"\]\((?:docs/|(?P<root>" + "|".join(map(re.escape, PAGES)) + r"))")


def included(name: str) -> str:
    """The root file ``name`` with its links rebased onto the docs folder."""
    text = (ROOT / name).read_text(encoding="utf-8")
    return LINK.sub(lambda m: "](" + (PAGES[m["root"]] if m["root"] else ""), text)


def on_page_markdown(markdown: str, **_: object) -> str:
    """Replace every include line of a page by the file it names."""
    return INCLUDE.sub(lambda match: included(match["name"]), markdown)


def on_serve(server, **_: object):
    """`mkdocs serve` also rebuilds when an includable root file changes."""
    for name in PAGES:
        server.watch(str(ROOT / name))
    return server
