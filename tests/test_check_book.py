"""tests/check_book.py: headless Chromium finds each planted fault and passes a clean book.

A hand-written site plants one fault per page (a missing image, a JavaScript error, a leaked
traceback and paths, broken links, untypeset math) beside clean pages; a tiny Jupyter Book built
with the project's offline MathJax settings must pass with no problem. Needs Debian's chromium and
chromium-driver (`make chromium`) and the local MathJax copy (`make mathjax`).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import check_book
import pytest
import yaml
from check_book import Problem

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "book" / "assets" / "mathjax" / "tex-mml-chtml.js"


def _png(width: int = 24, height: int = 16) -> bytes:
    """A small valid red PNG, written with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\xc8\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _page(body: str, title: str = "page") -> str:
    head = f"<head><meta charset='utf-8'><title>{title}</title></head>"
    return f"<!DOCTYPE html><html>{head}\n<body>{body}</body></html>\n"


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    """Chromium and chromedriver; the tests fail (never skip) without them."""
    try:
        return check_book.find_browser()
    except check_book.BrowserNotFound as err:
        pytest.fail(f"headless Chromium is needed for the book checks: {err}", pytrace=False)


# ---------------------------------------------------------------------------------- planted faults


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A hand-written build folder: clean pages, one planted fault per page, pages to skip."""
    root = tmp_path_factory.mktemp("site") / "html"
    (root / "sub").mkdir(parents=True)
    (root / "ok.png").write_bytes(_png())
    files = {
        "good.html": _page(
            "<h1 id='present'>Clean</h1><p>Prose with an image:</p><img src='ok.png' alt='ok'>"
            "<p><a href='sub/page.html#deep'>deeper</a> <a href='#present'>here</a> "
            "<a href='https://example.org/x#y'>web</a> <a href='mailto:a@b.c'>mail</a> "
            "<a href='#'>top</a> <a href='ok.png'>file</a></p>"
            # Code the author wrote is not searched for leaks: only outputs are.
            "<div class='cell_input'><pre>raise RuntimeError  # Traceback, /tmp/x, Warning: ok"
            "</pre></div><p>Run <code>ls /home/</code> and <code>$$x$$</code>.</p>"
            "<div style='height:2400px'></div><p>bottom of a tall page</p>"
        ),
        "sub/page.html": _page(
            "<h2 id='deep'>Deep</h2><a name='old-anchor'></a>"
            "<a href='../good.html#present'>back</a> <a href='#old-anchor'>old</a>"
            "<img src='../ok.png' alt='up'>"
        ),
        "missing_image.html": _page("<p>Figure:</p><img src='nothere.png' alt='gone'>"),
        "js_error.html": _page('<p>Script:</p><script>throw new Error("boom")</script>'),
        "leaks.html": _page(
            "<div class='cell_output'><div class='output stderr'><pre>"
            "Traceback (most recent call last):\n"
            f'  File "{root.parent}/analysis.py", line 3, in &lt;module&gt;\n'
            "TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.</pre>"
            "</div></div><p>Saved to /home/alice/results.csv</p>"
        ),
        "links.html": _page(
            "<a href='nowhere.html'>missing page</a> <a href='good.html#absent'>missing anchor</a>"
            " <a href='#also-absent'>missing here</a> <a href='good.html#present'>fine</a>"
        ),
        "math.html": _page(
            "<p>Inline <span class='math notranslate nohighlight'>\\(x^2\\)</span>.</p>"
            "<p>Display in prose: $$ E = mc^2 $$</p>"
        ),
        # Not content pages: never loaded.
        "index.html": "<html><head><meta http-equiv='Refresh' content='0; url=good.html'/></head>",
        "genindex.html": _page("<script>throw new Error('not checked')</script>"),
        "search.html": _page("<script>throw new Error('not checked')</script>"),
        "_static/widget.html": _page("<img src='missing.png'>"),
        "_sources/intro.html": _page("<img src='missing.png'>"),
        "_images/x.html": _page("<img src='missing.png'>"),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def planted(site: Path, browser) -> tuple[dict[str, list[Problem]], Path]:
    """The checker run once over the whole planted site: problems by page, screenshot folder."""
    shots = site.parent / "screenshots"
    by_page: dict[str, list[Problem]] = {page: [] for page in check_book.list_pages(site)}
    for problem in check_book.check_book(site, screenshots=shots, timeout=20):
        by_page[problem.page].append(problem)
    return by_page, shots


def _kinds(problems: list[Problem]) -> set[str]:
    return {p.kind for p in problems}


def _details(problems: list[Problem]) -> str:
    return "\n".join(p.detail for p in problems)


def test_lists_content_pages_only(site: Path):
    assert check_book.list_pages(site) == [
        "good.html",
        "js_error.html",
        "leaks.html",
        "links.html",
        "math.html",
        "missing_image.html",
        "sub/page.html",
    ]
    assert check_book.list_pages(site, ["sub/*", "leaks"]) == ["leaks.html", "sub/page.html"]


def test_links_checked_without_a_browser(site: Path):
    problems = check_book.check_links(site, check_book.list_pages(site))
    assert {p.page for p in problems} == {"links.html"}
    text = _details(problems)
    assert "nowhere.html" in text
    assert "#absent in good.html" in text
    assert "#also-absent in links.html" in text
    assert len(problems) == 3


def test_default_path_markers(site: Path):
    markers = check_book.default_path_markers(site)
    assert str(site.parent) in markers
    assert "/home/" in markers and "/root/" in markers and "/tmp/" in markers
    assert "/" not in markers
    project = check_book.default_path_markers(ROOT / "_build" / "html")
    assert str(ROOT) in project and str(ROOT / "_build") in project


def test_console_levels_and_known_noise():
    entries = [
        {"level": "SEVERE", "source": "javascript", "message": "x.html 3:1 Uncaught Error: boom"},
        {"level": "WARNING", "source": "console-api", "message": "only a warning"},
        {"level": "SEVERE", "source": "network", "message": "file:///b/a.png - Failed to load"},
        {"level": "SEVERE", "source": "network", "message": "file:///b/f.woff - Failed to load"},
        {
            "level": "SEVERE",
            "source": "javascript",
            "message": "p.html 61:12 Uncaught SyntaxError: "
            "Identifier 'THEBE_JS_URL' has already been declared",
        },
        {
            "level": "SEVERE",
            "source": "console-api",
            "message": 'theme.js 0:1488 "Got invalid theme mode: . Resetting to auto."',
        },
    ]
    problems = check_book.check_console("p.html", entries, broken={"file:///b/a.png"})
    assert [(p.kind, p.detail.split(" - ")[0]) for p in problems] == [
        ("js-error", "x.html 3:1 Uncaught Error: boom"),
        ("resource", "file:///b/f.woff"),
    ]


def test_clean_pages_pass(planted):
    by_page, _ = planted
    assert by_page["good.html"] == []
    assert by_page["sub/page.html"] == []


def test_missing_image(planted):
    problems = planted[0]["missing_image.html"]
    assert _kinds(problems) == {"image"}, problems
    assert "nothere.png" in _details(problems)


def test_javascript_error(planted):
    problems = planted[0]["js_error.html"]
    assert _kinds(problems) == {"js-error"}, problems
    assert "boom" in _details(problems)


def test_traceback_warning_and_paths(planted, site: Path):
    problems = planted[0]["leaks.html"]
    assert _kinds(problems) == {"text", "path"}, problems
    text = _details([p for p in problems if p.kind == "text"])
    assert "Traceback" in text and "TqdmWarning:" in text
    paths = _details([p for p in problems if p.kind == "path"])
    assert repr(str(site.parent)) in paths
    assert "'/home/'" in paths


def test_broken_links(planted):
    problems = planted[0]["links.html"]
    assert _kinds(problems) == {"link"}, problems
    assert len(problems) == 3


def test_untypeset_math(planted):
    problems = planted[0]["math.html"]
    assert _kinds(problems) == {"math"}, problems
    text = _details(problems)
    assert "not typeset: '\\(x^2\\)'" in text
    assert "loads no MathJax" in text
    assert "raw TeX '$$'" in text


def test_screenshots(planted):
    by_page, shots = planted
    for page in by_page:
        png = shots / Path(page).with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", page
    # A full-page capture: the tall page is taller than the 1000-pixel window.
    head = (shots / "good.png").read_bytes()[:24]
    assert int.from_bytes(head[20:24], "big") > 2400
    assert not (shots / "index.png").exists() and not (shots / "genindex.png").exists()


def _main(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = check_book.main(list(argv))
    return code, out.getvalue() + err.getvalue()


def test_command_line(site: Path, browser):
    code, out = _main(str(site), "--page", "good.html", "sub/*", "--timeout", "20")
    assert code == 0, out
    assert "ok    good.html" in out and "ok    sub/page.html" in out
    assert "All 2 pages ok" in out

    code, out = _main(str(site), "--page", "js_error", "links")
    assert code == 1, out
    assert "FAIL  js_error.html" in out and "FAIL  links.html" in out
    assert "links.html: link: 'nowhere.html'" in out
    assert "js_error.html: js-error:" in out and "boom" in out

    code, out = _main(str(site), "--page", "no-such-page")
    assert code == 2 and "no content pages" in out


# ---------------------------------------------------------------------------------- a real book


def _book_config() -> dict:
    """A tiny book's _config.yml with the project's parse and offline MathJax settings."""
    project = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = project["sphinx"]["config"]
    return {
        "title": "Tiny book",
        "author": "tests",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "parse": project["parse"],
        "html": project.get("html", {}),
        "launch_buttons": project.get("launch_buttons", {}),
        "repository": project.get("repository", {}),
        "sphinx": {
            "config": {
                # The project's local MathJax copy, referenced in place (relative to the project).
                "html_static_path": [str(ROOT / p) for p in sphinx["html_static_path"]],
                "mathjax_path": sphinx["mathjax_path"],
            }
        },
    }


INTRO_MD = r"""# Tiny book

Inline math $a^2 + b^2 = c^2$ and display math

$$
\int_0^1 x \, dx = \tfrac{1}{2}
$$

See {numref}`fig-square` in {ref}`sec-figure`, equation {eq}`eq-sum` and [the notebook](notebook).
"""

CHAPTER_MD = r"""# Chapter

(sec-figure)=
## A figure

```{figure} square.png
:name: fig-square

A red square.
```

```{math}
:label: eq-sum
\sum_{i=1}^n i = \frac{n(n+1)}{2}
```

\begin{align}
y &= x^2 \\
z &= \sqrt{y}
\end{align}
"""


def _notebook() -> dict:
    """An executed notebook: markdown math, a stream output and a LaTeX display output."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "markdown",
                "id": "m1",
                "metadata": {},
                "source": "# A notebook\n\nThe mean $\\bar x = \\frac{1}{n}\\sum_i x_i$.",
            },
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": 1,
                "source": "print('mean', 2.5)\nLatex(r'$$\\bar x = 2.5$$')",
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": "mean 2.5\n"},
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "metadata": {},
                        "data": {
                            "text/latex": "$$\\bar x = 2.5$$",
                            "text/plain": "<IPython.core.display.Latex object>",
                        },
                    },
                ],
            },
        ],
    }


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    """A three-page Jupyter Book built strictly (-W) with the project's offline MathJax."""
    if not MATHJAX.exists():
        pytest.fail(f"{MATHJAX.relative_to(ROOT)} is missing: run `make mathjax`", pytrace=False)
    src = tmp_path_factory.mktemp("tinybook")
    (src / "_config.yml").write_text(yaml.safe_dump(_book_config()), encoding="utf-8")
    toc = {
        "format": "jb-book",
        "root": "intro",
        "chapters": [{"file": "chapter"}, {"file": "notebook"}],
    }
    (src / "_toc.yml").write_text(yaml.safe_dump(toc), encoding="utf-8")
    (src / "intro.md").write_text(INTRO_MD, encoding="utf-8")
    (src / "chapter.md").write_text(CHAPTER_MD, encoding="utf-8")
    (src / "notebook.ipynb").write_text(json.dumps(_notebook()), encoding="utf-8")
    (src / "square.png").write_bytes(_png(40, 30))
    run = subprocess.run(
        [_jupyter_book(), "build", str(src), "-W", "--keep-going", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return src / "_build" / "html"


def test_tiny_jupyter_book_passes(tiny_book: Path, browser):
    assert check_book.list_pages(tiny_book) == ["chapter.html", "intro.html", "notebook.html"]
    shots = tiny_book.parent / "screenshots"
    code, out = _main(str(tiny_book), "--screenshots", str(shots))
    assert code == 0, out
    assert "All 3 pages ok" in out
    for page in ("intro", "chapter", "notebook"):
        assert (shots / f"{page}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_jupyter_book_without_mathjax_fails(tiny_book: Path, browser, tmp_path: Path):
    """The same pages without their MathJax copy: the math is reported untypeset."""
    html = (tiny_book / "chapter.html").read_text(encoding="utf-8")
    assert 'class="math notranslate nohighlight"' in html  # Sphinx math, typeset in the browser
    broken = tmp_path / "html"
    shutil.copytree(tiny_book, broken, ignore=shutil.ignore_patterns("mathjax"))
    problems = check_book.check_book(broken, ["chapter.html"], timeout=20)
    assert {p.kind for p in problems} == {"math", "resource"}, problems
    text = _details(problems)
    assert "did not load" in text and "not typeset: '\\[\\sum_{i=1}^n" in text
