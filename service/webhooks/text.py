"""Plain text out of the HTML that Intercom puts in message bodies, and back."""

from __future__ import annotations

import html
from html.parser import HTMLParser

_BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "blockquote", "pre", "tr", "table",
                     "h1", "h2", "h3", "h4", "h5", "h6"})
_HIDDEN = frozenset({"script", "style", "template"})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS and self.parts:
            # a block after text starts a new line; the first block does not
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Return the text of an HTML fragment: tags dropped, entities decoded, blocks as lines."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def text_to_html(text: str) -> str:
    """Return text as one HTML paragraph that `html_to_text` turns back into the same text."""
    return "<p>" + html.escape(text, quote=False).replace("\n", "<br>") + "</p>"
