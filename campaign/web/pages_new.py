"""The new-campaign flow: /new (upload) -> map -> template -> preview -> confirm.

A placeholder: the page helpers fill `routes` (app.py adds them in order).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
