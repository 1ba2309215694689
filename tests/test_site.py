"""The built HTML book, checked as a reader's browser sees it.

These tests read the site in ``_build/html``. ``make site-test`` builds the site
of the active profile and runs them (``make test`` leaves them out). Without a
built site they skip, unless ``KERNELS_REQUIRE_SITE=1`` (set by ``make
site-test``), where they fail. Without Chromium the browser test skips and says
how to install it.

- Internal links: every ``href``/``src`` to a local file resolves, and every
  ``#anchor`` into a page exists there.
- Offline: no page loads a script, style sheet or image from another host (fonts
  and other requests made by scripts or style sheets are caught in the browser:
  offline, they fail as requests).
- In headless Chromium (Debian's ``chromium`` package, driven by Playwright): every
  page loads without console errors or failed requests, every image has decoded
  pixels, and every chapter page shows its figures.
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
REQUIRED = os.environ.get("KERNELS_REQUIRE_SITE") == "1"

# Run by `make site-test` (after a build), not by `make test`.
pytestmark = pytest.mark.site
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


REFRESH = re.compile(r'http-equiv="refresh"[^>]*url=([^"]+)"', re.IGNORECASE)


def _pages():
    """Content pages (redirect stubs such as the root index.html are checked separately)."""
    return sorted(p for p in SITE.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts
                  and not REFRESH.search(p.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def pages():
    if not (SITE / "index.html").exists():
        message = f"no built site at {SITE}: run `make book PROFILE=ci` first"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return _pages()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids, self.remote = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            value = attrs.get(name)
            if not value:
                continue
            parts = urlsplit(value)
            if parts.scheme in ("http", "https") or value.startswith("//"):
                # A link to another site is fine; a resource loaded from one is not.
                rel = set((attrs.get("rel") or "").lower().split())
                loads = tag in ("script", "img", "iframe") or (
                    tag == "link" and rel & {"stylesheet", "preload", "icon", "modulepreload"})
                if loads:
                    self.remote.append(value)
            elif parts.scheme in ("", "file"):
                self.links.append((tag, value))


def _parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_internal_links_and_anchors_resolve(pages):
    """Every local href/src exists, and #anchors exist in their target page."""
    ids = {page: _parse(page).ids for page in pages}
    broken = []
    for page in pages:
        for tag, value in _parse(page).links:
            parts = urlsplit(value)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(SITE)}: <{tag}> {value} (missing file)")
            elif parts.fragment and target.suffix == ".html":
                known = ids.get(target) if target in ids else _parse(target).ids
                if parts.fragment not in known:
                    broken.append(f"{page.relative_to(SITE)}: <{tag}> {value} (no anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_redirects_point_to_pages():
    """Redirect stubs (the root index.html) lead to existing pages."""
    if not (SITE / "index.html").exists():
        pytest.skip(f"no built site at {SITE}")
    for stub in SITE.rglob("*.html"):
        match = REFRESH.search(stub.read_text(encoding="utf-8"))
        if match:
            target = (stub.parent / unquote(urlsplit(match.group(1)).path)).resolve()
            assert target.exists(), f"{stub.relative_to(SITE)} redirects to missing {target}"


def test_no_resource_comes_from_another_host(pages):
    """Scripts, style sheets and images are served by the site itself."""
    remote = [f"{page.relative_to(SITE)}: {url}" for page in pages
              for url in _parse(page).remote]
    assert not remote, "resources loaded from the network:\n" + "\n".join(remote)


def test_no_page_shows_a_path_of_the_build_machine(pages):
    """The checkout's absolute path (for example in a parameters cell) is not on any page."""
    found = [page.relative_to(SITE).as_posix() for page in pages
             if str(ROOT) in page.read_text(encoding="utf-8", errors="replace")]
    assert not found, f"pages that show {ROOT}: {found}"


def test_chapter_pages_have_their_figures(pages):
    """Each executed chapter shows PNG figures (executed output, not placeholders)."""
    chapters = [p for p in pages if re.match(r"0\d-", p.name)]  # 9x: back matter
    assert chapters, "no chapter pages in the site"
    for page in chapters:
        images = [v for tag, v in _parse(page).links if tag == "img" and v.endswith(".png")]
        assert images, f"{page.name} has no figures"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        # Not a Python dependency: without it the browser test skips, even in CI.
        pytest.skip("Chromium is not installed: `apt-get install chromium` (Debian) to run "
                    "the browser tests")
    try:
        from playwright import sync_api
    except ImportError:
        if REQUIRED:
            pytest.fail("playwright is not installed: `make install` installs it")
        pytest.skip("playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def _visit(browser, path):
    """Problems a reader would meet on one page."""
    problems, name = [], path.relative_to(SITE)
    page = browser.new_page()
    page.on("console", lambda m: problems.append(f"{name}: console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"{name}: script error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"{name}: failed request {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0))"
               ".map(i => i.getAttribute('src'))")
    problems.extend(f"{name}: image did not load: {src}" for src in broken)
    page.close()
    return problems


def test_every_page_loads_cleanly_in_chromium(pages, browser):
    """No console error, failed request or undecoded image on any page."""
    problems = [problem for path in pages for problem in _visit(browser, path)]
    assert not problems, "\n".join(problems)
