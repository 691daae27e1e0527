"""The docs site in a real browser: `mkdocs build --strict` (mkdocs.yml) builds it into the test's
tmp folder, a static server serves it on loopback, and the system Chromium (Playwright) opens
every page; a broken internal link (page, anchor or file) or a console error fails.

In the default suite (≈ 10 s on 2 loaded cores: the build, then 14 pages). Skipped, naming why,
where mkdocs (the `docs` extra) or a Chromium is not installed."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
import yaml

from conftest import REPO


@dataclass
class Visited:
    """What one page showed in the browser."""

    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    links: list[str] = field(default_factory=list)  # absolute URLs of its <a href>, <img src>
    ids: set[str] = field(default_factory=set)  # the anchors it offers


class QuietHandler(SimpleHTTPRequestHandler):
    """A static file handler that keeps the test output clean."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs-build` builds it (strict: any warning fails), in a tmp folder."""
    for module in ("mkdocs", "material", "mkdocstrings"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def served(site) -> Iterator[str]:
    """The site's base URL on a loopback static server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_url(base: str, html: Path, site: Path) -> str:
    """The URL a built page is served at (``models/index.html`` → ``<base>models/``)."""
    relative = html.relative_to(site).as_posix()
    return base + relative.removesuffix("index.html")


@pytest.fixture(scope="module")
def visited(site, served, browser) -> dict[str, Visited]:
    """Every built page (404.html aside) opened once: URL → what it showed."""
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    context = browser.new_context()
    shown: dict[str, Visited] = {}
    try:
        for number, html in enumerate(pages):
            url = page_url(served, html, site)
            seen = shown[url] = Visited()
            page = context.new_page()
            page.on("console", lambda msg, seen=seen: msg.type == "error" and seen.errors.append(msg.text))
            page.on("pageerror", lambda exc, seen=seen: seen.errors.append(str(exc)))
            # Images, styles and scripts load before "load"; what starts after it (the search
            # index, in a worker) is the same on every page, so the first page waits for it too.
            page.goto(url, wait_until="networkidle" if number == 0 else "load")
            seen.links = page.eval_on_selector_all("a[href], img[src]", "els => els.map(e => e.href || e.src)")
            seen.ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            page.close()
    finally:
        context.close()
    return shown


def broken_links(shown: dict[str, Visited], base: str, site: Path) -> list[str]:
    """``page -> target`` for every internal link whose page, anchor or file does not exist."""
    broken = []
    for url, seen in shown.items():
        for link in seen.links:
            if not link.startswith(base):
                continue  # another origin: not the site's to keep
            target, anchor = urldefrag(link)
            if target in shown:
                ok = not anchor or anchor in shown[target].ids
            else:
                ok = (site / urlsplit(target).path.lstrip("/")).is_file()
            if not ok:
                broken.append(f"{url} -> {link}")
    return broken


def nav_pages(nav: list) -> list[str]:
    """The Markdown files mkdocs.yml's nav lists, in order."""
    found = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        found += nav_pages(value) if isinstance(value, list) else [value]
    return found


def test_every_page_of_the_nav_is_built_and_opened(visited, served):
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    urls = [served + ("" if page == "index.md" else page.removesuffix(".md") + "/") for page in nav_pages(config["nav"])]
    assert urls and not [url for url in urls if url not in visited]


def test_no_page_logs_a_console_error(visited):
    errors = {url: seen.errors for url, seen in visited.items() if seen.errors}
    assert not errors


def test_every_internal_link_reaches_a_page_anchor_or_file(visited, served, site):
    assert sum(len(seen.links) for seen in visited.values()) > len(visited)  # the links were read
    assert not broken_links(visited, served, site)


def test_a_link_to_a_missing_page_or_anchor_is_reported(tmp_path):
    base = "http://127.0.0.1:1/"
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "roc.png").write_bytes(b"png")
    shown = {base: Visited(links=[base + "a/#top", base + "figures/roc.png", "https://other.invalid/"], ids={"x"}),
             base + "a/": Visited(links=[base + "#x", base + "gone/", base + "#nope"], ids={"top"})}  # fmt: skip
    assert broken_links(shown, base, tmp_path) == [f"{base}a/ -> {base}gone/", f"{base}a/ -> {base}#nope"]
