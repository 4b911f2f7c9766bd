"""The campaigns list (/) and a campaign's page (/campaigns/{id}).

A placeholder: the page helpers fill `routes` (app.py adds them in order).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
