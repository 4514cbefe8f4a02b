"""Markdown for untrusted prompts and outputs: hostile input stays inert, markdown still works."""

import re
from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from annotate.models import Candidate, Prompt
from annotate.rendering import render_markdown
from annotate.templatetags.preflab import markdown

# Written out here rather than imported, so that widening the module's allow-list fails a test.
ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "span", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "hr", "a",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "rel"}, "span": {"class"}, "code": {"class"}}
SAFE_SCHEMES = ("http:", "https:", "mailto:")
REL = "noopener noreferrer nofollow"

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "md-link-js": "[click](javascript:alert(1))",
    "md-link-js-upper": "[x](JAVASCRIPT:alert(1))",
    "html-link-js": '<a href="javascript:alert(1)">a</a>',
    "md-image-js": "![img](javascript:alert(1))",
    "iframe": '<iframe src="https://example.com/frame"></iframe>',
    "svg-onload": "<svg onload=alert(1)>",
    "style": "<style>body { display: none }</style>",
    "data-link": "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "data-image": "![i](data:image/png;base64,iVBORw0KGgo=)",
    "autolink-js": "<javascript:alert(1)>",
    "entity-js": "[x](&#106;avascript:alert(1))",
    "reference-js": "[x][r]\n\n[r]: javascript:alert(1)",
    "fence-info": '```"><script>alert(1)</script>\ncode\n```',
    "block-html": "<div onclick=alert(1)>\n\n*hi*\n\n</div>",
}
# Fragments that must never appear inside markup (they may appear as escaped, visible text).
DANGEROUS = ("<script", "onerror", "onload", "onclick", "javascript:", "data:", "<iframe",
             "<svg", "<style", "<img", "style=", "src=")


class _Collector(HTMLParser):
    """Collect the start tags with their attributes, and the visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html):
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.tags, "".join(collector.text)


def markup_of(html):
    """Return the tags of the HTML only, lower-cased; text is escaped so holds no '<'."""
    return " ".join(re.findall(r"<[^>]*>", html)).lower()


def assert_inert(html):
    markup = markup_of(html)
    for fragment in DANGEROUS:
        assert fragment not in markup, f"{fragment!r} in markup: {html}"
    tags, _ = parse(html)
    for tag, attrs in tags:
        assert tag in ALLOWED_TAGS, html
        assert set(attrs) <= ALLOWED_ATTRIBUTES.get(tag, set()), html
        if "href" in attrs:
            assert attrs["href"].lower().startswith(SAFE_SCHEMES), html


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_it_keeps_hostile_input_inert(source):
    html = render_markdown(source)
    assert_inert(html)
    assert "<script" not in html.lower()


def test_it_keeps_all_hostile_input_inert_together():
    assert_inert(render_markdown("\n\n".join(HOSTILE.values())))


@pytest.mark.parametrize(
    "source",
    [HOSTILE["script"], HOSTILE["img-onerror"], HOSTILE["html-link-js"], HOSTILE["svg-onload"],
     HOSTILE["iframe"], HOSTILE["style"]],
)
def test_it_shows_raw_html_as_escaped_text(source):
    html = render_markdown(source)
    assert html.startswith("<p>&lt;")
    _, text = parse(html)
    assert text.strip() == source


def test_it_escapes_the_script_tag():
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render_markdown(HOSTILE["script"])


@pytest.mark.parametrize("key", ["md-link-js", "md-link-js-upper", "md-image-js", "data-link"])
def test_it_leaves_links_with_unsafe_schemes_as_plain_text(key):
    html = render_markdown(HOSTILE[key])
    tags, text = parse(html)
    assert [tag for tag, _ in tags] == ["p"]
    assert text.strip() == HOSTILE[key]


def test_it_renders_bold_italic_and_strikethrough():
    html = render_markdown("**bold** *it* ~~gone~~")
    assert html == "<p><strong>bold</strong> <em>it</em> <del>gone</del></p>\n"


def test_it_renders_lists_quotes_headings_and_rules():
    html = render_markdown("# Title\n\n- one\n- two\n\n1. first\n\n> quoted\n\n---\n")
    assert "<h1>Title</h1>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<ol>\n<li>first</li>\n</ol>" in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<hr>" in html


def test_it_escapes_inline_code():
    assert render_markdown("run `a < b && <i>`") == (
        "<p>run <code>a &lt; b &amp;&amp; &lt;i&gt;</code></p>\n"
    )


def test_it_highlights_a_fenced_python_block():
    html = render_markdown("```python\ndef f(x):\n    return '<b>'\n```")
    assert html.startswith('<pre><code class="highlight">')
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert_inert(html)


@pytest.mark.parametrize("fence", ["```no-such-language", "```"])
def test_it_shows_code_in_an_unknown_or_absent_language_plainly(fence):
    html = render_markdown(f"{fence}\nx = '<b>'\n```")
    assert html == "<pre><code>x = '&lt;b&gt;'\n</code></pre>\n"


def test_it_renders_tables():
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |\n")
    tags, _ = parse(html)
    assert [tag for tag, _ in tags] == [
        "table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td",
    ]
    assert "style" not in html  # alignment arrives as style="...", which is not allowed


def test_it_keeps_http_and_mailto_links_and_adds_rel():
    html = render_markdown(
        '[docs](https://example.com/docs "The docs") <http://example.org> <mailto:a@example.com>'
    )
    links = [attrs for tag, attrs in parse(html)[0] if tag == "a"]
    assert links == [
        {"href": "https://example.com/docs", "title": "The docs", "rel": REL},
        {"href": "http://example.org", "rel": REL},
        {"href": "mailto:a@example.com", "rel": REL},
    ]
    assert "target" not in html


def test_it_drops_relative_link_targets():
    tags, text = parse(render_markdown("[home](/annotate/x/) [top](#top)"))
    assert [attrs for tag, attrs in tags if tag == "a"] == [{"rel": REL}, {"rel": REL}]
    assert text.strip() == "home top"


def test_it_shows_an_image_as_its_alt_text():
    html = render_markdown('![a *chart* <b>](https://example.com/c.png "t")')
    assert html == "<p>a chart &lt;b&gt;</p>\n"


def test_it_returns_a_safe_string():
    assert isinstance(render_markdown("plain"), SafeString)
    assert isinstance(render_markdown(""), SafeString)


def test_it_treats_text_marked_safe_as_untrusted_in_the_filter():
    html = markdown(mark_safe("<script>alert(1)</script>"))
    assert isinstance(html, SafeString)
    assert "&lt;script&gt;" in html
    assert markdown(None) == ""


def test_it_renders_through_the_template_filter_without_double_escaping():
    template = Template("{% load preflab %}<div class=\"md\">{{ text|markdown }}</div>")
    html = template.render(Context({"text": "**hi** <script>x</script>"}))
    assert html == (
        '<div class="md"><p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\n</div>'
    )


def _section(html, marker):
    start = html.index(marker)
    return html[start:html.index("</section>", start)]


def test_it_renders_hostile_prompts_and_candidates_inertly_on_the_work_page(
    client, annotator, project
):
    hostile = "\n\n".join(HOSTILE.values()) + "\n\n**still markdown**"
    Candidate.objects.filter(prompt__project=project).update(text=hostile)
    Prompt.objects.filter(project=project).update(
        conversation=[{"role": "user", "content": hostile}]
    )
    client.force_login(annotator)
    response = client.get(reverse("annotate-work", args=[project.slug]))
    assert response.status_code == 200
    html = response.content.decode()

    candidates = _section(html, '<section class="candidates"')
    transcript = _section(html, '<section class="transcript"')
    assert candidates.count('<div class="candidate-text md">') == 3
    assert '<div class="bubble md">' in transcript
    for area in (candidates, transcript):
        # The area's own markup (cards, data attributes) is ours; check what was rendered.
        for rendered in re.findall(r'class="(?:candidate-text|bubble) md">(.*?)</div>', area,
                                   re.S):
            assert_inert(rendered)
        assert "<script" not in area.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in area
        assert "&lt;img src=x onerror=alert(1)&gt;" in area
        assert "<strong>still markdown</strong>" in area
