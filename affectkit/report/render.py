"""Rendering reports from the Jinja2 templates in ``templates/``.

The run report and the comparison share one page layout and stylesheet (``base.html``, ``style.css``) and one
table macro per format (``tables.html``, ``tables.md``). HTML templates autoescape every value (run names,
config values and warnings come from files a user wrote); Markdown templates escape table cells themselves.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2


def md_cell(text: Any) -> str:
    """Text that stays inside one Markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("affectkit.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),  # by file name: *.html escapes, *.md does not
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (e.g. "report.html") with ``context``."""
    return environment().get_template(template).render(**context)


def png_data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
