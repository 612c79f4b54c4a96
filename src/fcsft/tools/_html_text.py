"""The readable text of an HTML page: what a model should see of a fetched page, not its markup.

trafilatura finds the page's main content and leaves out navigation, cookie banners, sidebars
and footers; tables come out a row a line with `|` between cells, so every number stays next
to its row's label (`| Q2 | 187.9 | 12.6 |`). Plain-text output is used, not markdown, because
markdown escapes (`file\\_name`) would change identifiers the model may copy into a call.

Two adjustments around the library:
- A page with no `<main>`, `<article>` or `role="main"` element has its body treated as the
  main element; otherwise trafilatura falls back to collecting paragraphs and tables, and
  drops the headings that say what a table is about.
- trafilatura's minimum sizes are off: a short page is still a page, and its text is returned.
When nothing is found as main content, the whole page's visible text is returned instead.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_BLANKS = re.compile(r"[ \t\r\f\v]+")


@lru_cache(maxsize=1)
def _config() -> Any:
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    config.set("DEFAULT", "MIN_EXTRACTED_COMM_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_COMM_SIZE", "1")
    return config


def _with_main(tree: Any) -> Any:
    """The tree, its body's children moved into a `<main>` when it marks no main content."""
    if tree.xpath("//main|//article|//*[@role='main']"):
        return tree
    body = tree.find(".//body")
    if body is None:
        return tree
    from lxml import etree

    main = etree.SubElement(body, "main")
    for child in list(body):
        if child is not main:
            main.append(child)  # moves the element, with its tail text
    main.text, body.text = body.text, None
    return tree


def _parse(html: str) -> Any:
    """The page as an lxml document; a fragment gets its `<html>` and `<body>` added."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        return lxml_html.document_fromstring(html)
    except ValueError:  # a string that declares its own encoding: let lxml read the bytes
        return lxml_html.document_fromstring(html.encode("utf-8"))
    except etree.ParserError:  # nothing but whitespace or comments
        return None


def html_to_text(html: str) -> str:
    """Title first, then the main content's text, tables a row a line."""
    import trafilatura

    tree = _parse(html)
    if tree is None:
        return ""
    title = " ".join((tree.findtext(".//title") or "").split())
    body = trafilatura.extract(
        _with_main(tree),
        output_format="txt",
        include_tables=True,
        include_comments=False,
        include_images=False,
        config=_config(),
    )
    if not body:
        body = trafilatura.html2txt(tree)
    lines = (_BLANKS.sub(" ", line).strip() for line in (body or "").splitlines())
    body = "\n".join(line for line in lines if line)
    return f"{title}\n\n{body}" if title and not body.startswith(title) else body
