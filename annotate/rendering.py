"""Markdown for untrusted prompts and model outputs: rendered, highlighted, then sanitised."""

from html import escape

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_TAGS = frozenset({
    "p", "br", "strong", "em", "del", "code", "pre", "span", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "hr", "a",
})
ALLOWED_ATTRIBUTES = {"a": frozenset({"href", "title"}), "span": frozenset({"class"}),
                      "code": frozenset({"class"})}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
HIGHLIGHT_CLASS = "highlight"
# The short classes Pygments puts on token spans (Token itself maps to "").
TOKEN_CLASSES = frozenset(STANDARD_TYPES.values()) - {""}
ALLOWED_CLASSES = {"span": TOKEN_CLASSES, "code": frozenset({HIGHLIGHT_CLASS})}


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """Return a Pygments-highlighted code block, or "" to let markdown-it escape it plainly."""
    if not lang:
        return ""
    try:
        lexer = get_lexer_by_name(lang)
    except ClassNotFound:
        return ""
    # A fresh formatter per block: HtmlFormatter fills caches while formatting, so none is
    # shared between threads serving different requests.
    body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    # Starting with "<pre" tells markdown-it to use this as the whole block.
    return f'<pre><code class="{HIGHLIGHT_CLASS}">{body}</code></pre>'


def _render_image_as_alt_text(self, tokens, idx, options, env) -> str:
    """Render an image as its escaped alt text."""
    # <img> is not allowed (remote images would let a prompt's author see who reads it), and
    # nh3 would drop it silently; the alt text at least shows the annotator something was there.
    return escape(self.renderInlineAsText(tokens[idx].children or [], options, env))


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep only known classes and absolute links; nh3 has already dropped bad URL schemes."""
    if attribute == "class" and tag in ALLOWED_CLASSES:
        kept = [name for name in value.split() if name in ALLOWED_CLASSES[tag]]
        return " ".join(kept) or None
    if tag == "a" and attribute == "href":
        # Relative links would navigate inside preflab itself on the annotator's session.
        scheme = value.split(":", 1)[0].lower() if ":" in value else ""
        return value if scheme in URL_SCHEMES else None
    return value


# Built once: its rules and options are never changed after this, and render() keeps its
# parsing state per call.
_md = MarkdownIt(
    "commonmark",
    # breaks: support messages rely on single newlines, which CommonMark would fold.
    {"html": False, "linkify": False, "typographer": False, "breaks": True,
     "highlight": _highlight},
).enable(["table", "strikethrough"])
_md.add_render_rule("image", _render_image_as_alt_text)
# markdown-it writes strikethrough as <s>; <del> is the tag on the allow-list.
_md.add_render_rule("s_open", lambda self, tokens, idx, options, env: "<del>")
_md.add_render_rule("s_close", lambda self, tokens, idx, options, env: "</del>")


def render_markdown(text: str) -> SafeString:
    """Render untrusted markdown to sanitised HTML that is safe to put in a page."""
    html = _md.render(text or "")
    # Sanitise even though raw HTML is off: the allow-list is what guarantees inert output,
    # whatever markdown-it or Pygments may emit.
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return mark_safe(cleaned)  # noqa: S308 - the HTML has just been through nh3's allow-list
