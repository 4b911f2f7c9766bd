"""Opt-outs (/optouts) and the report-file import (/reports/import).

A placeholder: the page helpers fill `routes` (app.py adds them in order).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
