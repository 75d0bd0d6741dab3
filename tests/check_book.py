"""Load every page of the built book in headless Chromium and report what a reader would see broken.

Usage::

    python tests/check_book.py BUILD_DIR [--screenshots DIR] [--page PATTERN ...]
                               [--timeout SECONDS]

Each content page of ``BUILD_DIR`` (``_build/html``: every ``.html`` except ``_static/``,
``_sources/``, ``_images/``, ``genindex.html``, ``search.html`` and redirect pages such as the root
``index.html``) is opened as a ``file://`` URL, as the Makefile tells readers to open the book, in
one headless Chromium session, and fails on

* ``image``: an ``<img>`` that does not load (a missing or undecodable file, naturalWidth 0);
* ``math``: a Sphinx math element (``span.math`` / ``div.math``) without MathJax output (an
  ``mjx-container``) once ``MathJax.startup.promise`` has resolved, a TeX error rendered by MathJax,
  or raw TeX delimiters (``\\(``, ``\\[``, ``$$``, ``\\begin{``) in visible prose;
* ``js-error``: a SEVERE entry in the browser console (uncaught exceptions, ``console.error``);
  ``resource``: a SEVERE network entry (a script, stylesheet or font that failed to load). Two
  messages that every Jupyter Book 1.x page logs (``KNOWN_CONSOLE_NOISE``) are not failures;
* ``text``: visible ``Traceback`` or ``...Warning:`` text (a leaked stderr block);
* ``path``: an absolute path of the build machine in visible text (the project folder, the
  virtual environment, ``/home/``, ``/root/``, ``/tmp/``, ``/usr/lib/python``...);
* ``link``: a relative link to a file missing under ``BUILD_DIR`` or to a ``#fragment`` that is no
  ``id``/``name`` in the target page (checked in Python; external links are never fetched);
* ``load``/``browser``: a page that did not load within the timeout, or a browser failure.

Code written by the author (notebook cell inputs, literal blocks, inline code) is not searched for
the text and path patterns; notebook outputs are. A full-page screenshot of each page is written
under ``--screenshots`` (``book/notebooks/claims.html`` -> ``DIR/book/notebooks/claims.png``).
One line is printed per page, then every problem and a summary; the exit status is 1 when any page
has a problem, 2 on a usage error or when Chromium is missing (``make chromium`` installs it).

Chromium is driven by Selenium 4 through Debian's ``chromedriver``, whose path is passed
explicitly, with ``SE_OFFLINE=true``: Selenium Manager never downloads anything. The browser
resolves no host name (``--host-resolver-rules``), so a page that needs the network fails fast.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import html.parser
import os
import re
import shutil
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

# Folders of the build that hold no content page, at any depth.
SKIP_DIRS = frozenset({"_static", "_sources", "_images", "_downloads", ".doctrees"})
# Generated pages that are not book content.
SKIP_FILES = frozenset({"genindex.html", "search.html", "py-modindex.html"})

# Visible text that betrays a leaked error or warning stream (regular expressions).
DEFAULT_TEXT_PATTERNS: tuple[str, ...] = (r"\bTraceback\b", r"\b\w*Warning:")
# Fixed path prefixes of a build machine; default_path_markers() adds this build's own folders.
DEFAULT_PATH_PREFIXES: tuple[str, ...] = (
    "/home/",
    "/root/",
    "/tmp/",
    "/usr/lib/python",
    "/usr/local/lib/python",
    "/opt/conda/",
    "/var/folders/",
    "/Users/",
    "C:\\Users\\",
)
# Raw TeX left in visible prose (outside code and math elements) means MathJax never saw it.
RAW_TEX_PATTERNS: tuple[str, ...] = (r"\\\(", r"\\\[", r"\$\$", r"\\begin\{")
# SEVERE console messages that every Jupyter Book 1.x page logs, whatever the book; not failures.
KNOWN_CONSOLE_NOISE: tuple[str, ...] = (
    # Sphinx 7.4.7 writes the inline scripts registered after Builder.init() twice (prepare_writing
    # re-adds registry scripts as filename '' where app.add_js_file kept None, so they never
    # compare equal), and sphinx-thebe's inline `const THEBE_JS_URL = ...` cannot be declared
    # again. Harmless: the first copy already defined the same constants.
    r"Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme on a reader's first visit (nothing in localStorage yet): it logs this
    # with console.error, then stores "auto".
    r"Got invalid theme mode: \. Resetting to auto",
)

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/lib/chromium/chromedriver", "chromedriver")
INSTALL_HINT = (
    "run `make chromium` (as root: apt-get update && apt-get install -y chromium chromium-driver)"
)
WINDOW = (1280, 1000)
# Chromium cannot capture much taller pages in one image; longer pages are cut there.
MAX_SCREENSHOT_HEIGHT = 16000
# At most this many reports of one kind per page (then a count of the rest).
MAX_PER_KIND = 8


@dataclass(frozen=True)
class Problem:
    """One defect: the page (relative to the build folder), its kind and what was found."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


class BrowserNotFound(RuntimeError):
    """Chromium or its driver is not installed."""


# ---------------------------------------------------------------------------------------- pages


def is_redirect(path: Path) -> bool:
    """Whether an HTML file is a bare redirect (a ``<meta http-equiv="refresh">`` page)."""
    head = path.read_text(encoding="utf-8", errors="replace")[:4096].lower()
    return bool(re.search(r"<meta[^>]+http-equiv=[\"']?refresh", head))


def list_pages(build_dir: Path, patterns: Sequence[str] | None = None) -> list[str]:
    """The content pages under ``build_dir``, as sorted POSIX paths relative to it.

    ``patterns`` keeps the pages whose relative path matches one of them: a glob (``book/*``) or,
    without glob characters, a substring (``claims``).
    """
    pages = []
    for dirpath, dirnames, filenames in os.walk(build_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in filenames:
            if not name.endswith(".html") or name in SKIP_FILES:
                continue
            path = Path(dirpath, name)
            if is_redirect(path):
                continue
            pages.append(path.relative_to(build_dir).as_posix())
    pages.sort()
    if patterns:
        pages = [p for p in pages if any(_matches(p, pat) for pat in patterns)]
    return pages


def _matches(page: str, pattern: str) -> bool:
    """A glob match on the relative path, or a substring match for a plain pattern."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(page, pattern)
    return pattern in page


# ---------------------------------------------------------------------------------------- links


class _LinkParser(html.parser.HTMLParser):
    """Collects the ``href`` of links and every ``id`` / ``a name`` of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if "id" in values:
            self.anchors.add(values["id"])
        if tag == "a" and "name" in values:
            self.anchors.add(values["name"])
        if tag in ("a", "area") and "href" in values:
            self.hrefs.append(values["href"].strip())


def parse_page(path: Path) -> _LinkParser:
    """Parse one HTML file for its links and anchors."""
    parser = _LinkParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def check_links(build_dir: Path, pages: Iterable[str]) -> list[Problem]:
    """Relative links of ``pages`` to a missing file or a missing ``#fragment`` under ``build_dir``.

    Links with a scheme (http, https, mailto, javascript, data...) or a host are not checked.
    """
    root = build_dir.resolve()
    parsed: dict[Path, _LinkParser] = {}

    def get(path: Path) -> _LinkParser:
        if path not in parsed:
            parsed[path] = parse_page(path)
        return parsed[path]

    problems = []
    for page in pages:
        seen: set[str] = set()
        for href in get(root / page).hrefs:
            if href in seen:
                continue
            seen.add(href)
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not href:
                continue
            if parts.path:
                rel = urlsplit(urljoin(f"http://book.invalid/{page}", parts.path)).path
                target = root / unquote(rel).lstrip("/")
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = root / page
            if not target.exists():
                problems.append(Problem(page, "link", f"{href!r}: no file {_rel(target, root)}"))
                continue
            fragment = unquote(parts.fragment)
            if fragment and fragment != "top" and target.suffix == ".html":
                if fragment not in get(target).anchors:
                    where = _rel(target, root)
                    problems.append(
                        Problem(page, "link", f"{href!r}: no anchor #{fragment} in {where}")
                    )
    return problems


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it is inside it, else as given."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------- text


def default_path_markers(build_dir: Path) -> list[str]:
    """Absolute paths that must never show on a page built in ``build_dir``.

    The build folder's parent, the project folder (the parent of an enclosing ``_build``), the
    running virtual environment, and the fixed prefixes of ``DEFAULT_PATH_PREFIXES``.
    """
    markers = []
    for build in dict.fromkeys((build_dir.absolute(), build_dir.resolve())):  # symlinks both ways
        markers.append(str(build.parent))
        for parent in build.parents:
            if parent.name == "_build":
                markers.append(str(parent.parent))
                break
    if sys.prefix != sys.base_prefix:
        markers.append(sys.prefix)
    # Never a marker as broad as "/" or "/work": at least two components.
    markers = [m.rstrip("/") for m in markers if len(Path(m).parts) > 2]
    return list(dict.fromkeys([*markers, *DEFAULT_PATH_PREFIXES]))


def find_text(page: str, text: str, patterns: Sequence[str], kind: str) -> list[Problem]:
    """A problem of ``kind`` per distinct line of ``text`` where a regular expression matches."""
    hits: list[str] = []
    for line in text.splitlines():
        for pattern in patterns:
            m = re.search(pattern, line)
            if m:
                hits.append(f"{m.group(0)!r} in {_snippet(line, m.start())!r}")
                break
    return _capped(page, kind, list(dict.fromkeys(hits)))


def find_paths(page: str, text: str, markers: Sequence[str]) -> list[Problem]:
    """A ``path`` problem per distinct line of ``text`` that contains one of ``markers``."""
    hits: list[str] = []
    for line in text.splitlines():
        for marker in markers:
            at = line.find(marker)
            if at >= 0:
                hits.append(f"{marker!r} in {_snippet(line, at)!r}")
                break
    return _capped(page, "path", list(dict.fromkeys(hits)))


def _snippet(line: str, at: int, width: int = 120) -> str:
    """About ``width`` characters of ``line`` around position ``at``."""
    start = max(0, at - width // 3)
    s = line[start : start + width].strip()
    return ("..." if start > 0 else "") + s + ("..." if start + width < len(line) else "")


def _capped(page: str, kind: str, details: list[str]) -> list[Problem]:
    """Problems for ``details``, at most ``MAX_PER_KIND`` and a count of the rest."""
    out = [Problem(page, kind, d) for d in details[:MAX_PER_KIND]]
    if len(details) > MAX_PER_KIND:
        out.append(Problem(page, kind, f"... and {len(details) - MAX_PER_KIND} more"))
    return out


# ---------------------------------------------------------------------------------------- browser

# Wait for MathJax (when the page loads it) to finish its first typesetting.
_JS_WAIT_MATHJAX = """
const [graceMs, done] = [arguments[0], arguments[arguments.length - 1]];
const script = document.querySelector('script[src*="mathjax" i], script#MathJax-script');
if (!script) { done('absent'); return; }
const t0 = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done('ok'), e => done('error: ' + e));
  } else if (Date.now() - t0 > graceMs) {
    done('MathJax (' + script.getAttribute('src') + ') did not load');
  } else {
    setTimeout(poll, 50);
  }
})();
"""

# Load every image (lazy ones too) and report whether each decoded.
_JS_IMAGES = """
const [timeoutMs, done] = [arguments[0], arguments[arguments.length - 1]];
const imgs = Array.from(document.images);
for (const img of imgs) if (img.loading === 'lazy') img.loading = 'eager';
const late = new Promise(resolve => setTimeout(() => resolve('timeout'), timeoutMs));
Promise.allSettled(imgs.map(img => Promise.race([img.decode().then(() => 'ok'), late])))
  .then(results => done(results.map((r, k) => ({
    src: imgs[k].getAttribute('src'),
    url: imgs[k].currentSrc || imgs[k].src,
    state: r.status === 'fulfilled' ? r.value : 'error',
    width: imgs[k].naturalWidth,
  }))));
"""

# After the screenshot: open collapsed blocks, then read the math state and the visible text,
# once without the author's code and once without any code or math (for raw TeX).
_JS_INSPECT = """
for (const d of document.querySelectorAll('details')) d.open = true;
for (const e of document.querySelectorAll('.toggle-hidden')) e.classList.remove('toggle-hidden');
const untypeset = [];
for (const el of document.querySelectorAll('span.math, div.math')) {
  if (el.querySelector('mjx-container')) continue;
  const tex = el.cloneNode(true);  // the TeX without the equation number and its permalink
  for (const extra of tex.querySelectorAll('.eqno, .headerlink')) extra.remove();
  untypeset.push(tex.textContent.trim().slice(0, 100));
}
const texErrors = Array.from(document.querySelectorAll('mjx-merror'),
  e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 100));
const hide = sel => {
  for (const el of document.querySelectorAll(sel)) {
    if (!el.closest('.cell_output, .output')) el.style.setProperty('display', 'none', 'important');
  }
};
hide('.cell_input, pre, code, kbd, samp, [class*="highlight"]');
const text = document.body ? document.body.innerText : '';
for (const el of document.querySelectorAll('pre, code, kbd, samp, .math, mjx-container'))
  el.style.setProperty('display', 'none', 'important');
const prose = document.body ? document.body.innerText : '';
return {untypeset, texErrors, text, prose};
"""


def find_browser() -> tuple[str, str]:
    """Paths of Chromium and its chromedriver ($CHROMIUM_BIN / $CHROMEDRIVER override them).

    Raises BrowserNotFound, naming the install command, when either (or selenium) is missing.
    """
    try:
        import selenium  # noqa: F401
    except ImportError as err:
        raise BrowserNotFound(f"{err}: run `make venv` (the `test` extra pins selenium)") from err
    found = []
    for env, candidates in (
        ("CHROMIUM_BIN", CHROMIUM_CANDIDATES),
        ("CHROMEDRIVER", CHROMEDRIVER_CANDIDATES),
    ):
        names = [os.environ[env]] if os.environ.get(env) else list(candidates)
        path = next((p for p in map(shutil.which, names) if p), None)
        if path is None:
            raise BrowserNotFound(f"{' / '.join(names)} not found: {INSTALL_HINT}")
        found.append(path)
    return found[0], found[1]


def start_browser(timeout: float) -> Any:
    """One headless Chromium session (Selenium 4), console logs on, no network, no downloads."""
    chromium, chromedriver = find_browser()
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with warnings.catch_warnings():  # chromedriver on localhost: never through $http_proxy
        warnings.simplefilter("ignore", DeprecationWarning)
        options.ignore_local_proxy_environment_variables()
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout + 5)
    return driver


def check_images(page: str, images: list[dict[str, Any]]) -> list[Problem]:
    """An ``image`` problem per image that failed to load or decode (naturalWidth 0).

    An SVG without an intrinsic size decodes with naturalWidth 0 and is not a failure.
    """
    problems = []
    for img in images:
        src = img.get("src") or ""
        if not src:
            problems.append(Problem(page, "image", "<img> without src"))
        elif img["state"] != "ok":
            why = "did not load in time" if img["state"] == "timeout" else "does not load"
            problems.append(Problem(page, "image", f"{src!r} {why}"))
        elif img["width"] == 0 and not urlsplit(src).path.lower().endswith(".svg"):
            problems.append(Problem(page, "image", f"{src!r} has naturalWidth 0"))
    return problems


def check_math(page: str, mathjax: str, state: dict[str, Any]) -> list[Problem]:
    """``math`` problems: MathJax failures, untypeset math elements, TeX errors, raw TeX."""
    problems = []
    if mathjax not in ("ok", "absent"):
        problems.append(Problem(page, "math", mathjax))
    untypeset = [f"not typeset: '{tex}'" for tex in state["untypeset"]]
    if untypeset and mathjax == "absent":
        untypeset[0] += " (the page loads no MathJax)"
    problems += _capped(page, "math", untypeset)
    problems += _capped(page, "math", [f"TeX error: {e!r}" for e in state["texErrors"]])
    problems += [
        Problem(p.page, "math", f"raw TeX {p.detail}")
        for p in find_text(page, state["prose"], RAW_TEX_PATTERNS, "math")
    ]
    return problems


def check_console(
    page: str,
    entries: list[dict[str, Any]],
    broken: set[str],
    ignore: Sequence[str] = KNOWN_CONSOLE_NOISE,
) -> list[Problem]:
    """SEVERE console entries: ``resource`` for network failures, ``js-error`` for the rest.

    Network failures of images already reported (URLs in ``broken``) are not repeated, and
    messages matching a regular expression of ``ignore`` are skipped.
    """
    details: dict[str, list[str]] = {"js-error": [], "resource": []}
    for entry in entries:
        message = str(entry.get("message", "")).strip()
        if entry.get("level") != "SEVERE" or any(re.search(p, message) for p in ignore):
            continue
        if entry.get("source") == "network":
            if not any(message.startswith(url) for url in broken):
                details["resource"].append(message)
        else:
            details["js-error"].append(message)
    return [p for kind, found in details.items() for p in _capped(page, kind, found)]


def screenshot(driver: Any, path: Path) -> None:
    """A PNG of the whole page (up to ``MAX_SCREENSHOT_HEIGHT`` CSS pixels tall) at ``path``.

    The viewport is made as tall as the page for the capture (device-metrics emulation) and
    restored after: a capture beyond the viewport lays the book's theme out at another size and
    shifts the article sideways."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    width = max(WINDOW[0], int(size["width"]))
    height = min(MAX_SCREENSHOT_HEIGHT, max(1, int(size["height"])))
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def check_page(
    driver: Any,
    build_dir: Path,
    page: str,
    *,
    timeout: float,
    screenshots: Path | None,
    path_markers: Sequence[str],
    text_patterns: Sequence[str],
    ignore_console: Sequence[str],
) -> list[Problem]:
    """Load one page in the running browser and run the browser checks on it."""
    from selenium.common.exceptions import TimeoutException

    driver.get_log("browser")  # drop what an earlier page left behind
    try:
        driver.get((build_dir / page).resolve().as_uri())
    except TimeoutException:
        driver.execute_script("window.stop()")
        return [Problem(page, "load", f"did not finish loading within {timeout:g} s")]
    ms = int(timeout * 1000)
    # The page has loaded: a MathJax script that ran has defined MathJax.startup by now.
    mathjax = driver.execute_async_script(_JS_WAIT_MATHJAX, min(ms, 1000))
    images = driver.execute_async_script(_JS_IMAGES, ms)
    if screenshots is not None:
        screenshot(driver, screenshots / Path(page).with_suffix(".png"))
    state = driver.execute_script(_JS_INSPECT)
    # Leaving the page delivers what it logged last (console entries arrive asynchronously).
    log = driver.get_log("browser")
    driver.get("about:blank")
    log += driver.get_log("browser")
    problems = check_images(page, images)
    broken = {img["url"] for img in images if img["state"] != "ok" and img["url"]}
    problems += check_math(page, mathjax, state)
    problems += check_console(page, log, broken, ignore_console)
    problems += find_text(page, state["text"], text_patterns, "text")
    problems += find_paths(page, state["text"], path_markers)
    return problems


def check_book(
    build_dir: Path,
    pages: Sequence[str] | None = None,
    *,
    screenshots: Path | None = None,
    timeout: float = 30.0,
    path_markers: Sequence[str] | None = None,
    text_patterns: Sequence[str] = DEFAULT_TEXT_PATTERNS,
    ignore_console: Sequence[str] = KNOWN_CONSOLE_NOISE,
    report: Any = None,
) -> list[Problem]:
    """Every problem of ``pages`` (default: all content pages) of the book in ``build_dir``.

    One browser session serves all pages. ``report(page, problems, seconds)`` is called after each
    page. Raises BrowserNotFound when Chromium or chromedriver is missing.
    """
    from selenium.common.exceptions import WebDriverException

    build_dir = Path(build_dir)
    pages = list_pages(build_dir) if pages is None else list(pages)
    markers = default_path_markers(build_dir) if path_markers is None else list(path_markers)
    links: dict[str, list[Problem]] = {}
    for p in check_links(build_dir, pages):
        links.setdefault(p.page, []).append(p)
    problems: list[Problem] = []
    driver = start_browser(timeout)
    try:
        for page in pages:
            t0 = time.perf_counter()
            try:
                found = check_page(
                    driver,
                    build_dir,
                    page,
                    timeout=timeout,
                    screenshots=screenshots,
                    path_markers=markers,
                    text_patterns=text_patterns,
                    ignore_console=ignore_console,
                )
            except WebDriverException as err:
                found = [Problem(page, "browser", (err.msg or repr(err)).splitlines()[0])]
                driver.quit()
                driver = start_browser(timeout)
            found += links.get(page, [])
            problems += found
            if report is not None:
                report(page, found, time.perf_counter() - t0)
    finally:
        driver.quit()
    return problems


# ---------------------------------------------------------------------------------------- main


def print_page(page: str, problems: list[Problem], seconds: float) -> None:
    """One line per page (ok, or how many problems), then its problems indented."""
    if not problems:
        print(f"ok    {page}  ({seconds:.1f} s)", flush=True)
        return
    print(f"FAIL  {page}  ({seconds:.1f} s): {len(problems)} problem(s)", flush=True)
    for p in problems:
        print(f"        {p.kind}: {p.detail}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description="Load every page of a built Jupyter Book in headless Chromium and report "
        "broken images, untypeset math, console errors, leaked tracebacks/warnings/paths "
        "and broken internal links."
    )
    parser.add_argument("build_dir", type=Path, help="the built HTML (e.g. _build/html)")
    parser.add_argument("--screenshots", type=Path, help="write a PNG of each page here")
    parser.add_argument(
        "--page",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATTERN",
        help="only pages whose path matches (glob, or substring without glob characters)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page (default 30)")
    parser.add_argument(
        "--forbid-path",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="more absolute paths that must not show (added to the defaults)",
    )
    parser.add_argument(
        "--forbid-text",
        nargs="+",
        action="extend",
        default=[],
        metavar="REGEX",
        help="more visible-text patterns that fail a page (added to Traceback, ...Warning:)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks; 0 when every page is clean, 1 when any has a problem, 2 on usage errors."""
    args = parse_args(argv)
    build_dir: Path = args.build_dir
    if not build_dir.is_dir():
        print(f"check_book: {build_dir} is not a folder (build the book first)", file=sys.stderr)
        return 2
    pages = list_pages(build_dir, args.page)
    if not pages:
        what = f" matching {args.page}" if args.page else ""
        print(f"check_book: no content pages{what} under {build_dir}", file=sys.stderr)
        return 2
    try:
        find_browser()
    except BrowserNotFound as err:
        print(f"check_book: {err}", file=sys.stderr)
        return 2
    print(f"Checking {len(pages)} page(s) of {build_dir} in headless Chromium", flush=True)
    t0 = time.perf_counter()
    problems = check_book(
        build_dir,
        pages,
        screenshots=args.screenshots,
        timeout=args.timeout,
        path_markers=[*default_path_markers(build_dir), *args.forbid_path],
        text_patterns=[*DEFAULT_TEXT_PATTERNS, *args.forbid_text],
        report=print_page,
    )
    elapsed = time.perf_counter() - t0
    bad = sorted({p.page for p in problems})
    shots = f"; screenshots in {args.screenshots}" if args.screenshots else ""
    if not problems:
        print(f"All {len(pages)} pages ok in {elapsed:.1f} s{shots}")
        return 0
    print(f"\n{len(problems)} problem(s) on {len(bad)} of {len(pages)} pages:")
    for p in problems:
        print(f"  {p}")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(Counter(p.kind for p in problems).items()))
    print(f"FAILED: {kinds} ({elapsed:.1f} s{shots})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
