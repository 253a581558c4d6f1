"""MkDocs hook: the Sphinx roles the docstrings use (``:class:`~edgecv.card.ModelCard```),
which the API reference would otherwise print literally, shown as plain code (``ModelCard``)."""

import re

# ":class:<code>~a.b.C</code>" as Markdown renders the role -> "<code>C</code>";
# without the tilde the full dotted path stays
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html, page, config, files):
    """Rewrite the roles on the API reference page."""
    return ROLE.sub(_code, html)
