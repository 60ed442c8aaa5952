"""The Jinja2 environments for the report's templates in recovery/templates/: the page (HTML,
autoescaped) and promote.sh (shell text, written as rendered)."""

import functools
import os

import jinja2

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


@functools.cache
def html_templates() -> jinja2.Environment:
    """report.html and its script: every value is escaped unless marked safe."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@functools.cache
def text_templates() -> jinja2.Environment:
    """promote.sh: text as written, its last line break kept; values are quoted by the caller."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
