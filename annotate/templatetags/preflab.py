"""Template filters for preflab pages."""

from django import template

from annotate.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown(value):
    """Render untrusted text as sanitised markdown HTML."""
    # Treat every value as raw text, even one already marked safe: that mark came from
    # elsewhere and says nothing about this content being clean markdown output.
    return render_markdown("" if value is None else str(value))
