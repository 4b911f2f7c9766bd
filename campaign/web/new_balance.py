"""What a new campaign costs against the account's balance (the preview page).

The balance comes from the gateway (`workflow.balance`): asked at most once per
`FRESH_SECONDS` per console process (PROTOCOL: QueryBalance at most once every 10 s, and
a preview is opened, filtered and paged often), one query at a time. A gateway that does
not answer is a note on the page (`Cost.error`), never a failed page.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from campaign.errors import CampaignError

FRESH_SECONDS = 30.0  # a balance this old is asked again
ERROR_SECONDS = 10.0  # a failed query is not repeated sooner


@dataclass(frozen=True)
class Cost:
    segments: int  # billed segments the campaign needs
    products: dict[str, int] | None  # product id -> remaining billed messages
    product: str | None  # the product the account sends with (configured, or the only one)
    enough: bool | None  # None: not known (no balance, or several products and none chosen)
    error: str | None  # why there is no balance


class BalanceCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._products: dict[str, int] | None = None
        self._error: str | None = None

    def get(self, settings: Any) -> tuple[dict[str, int] | None, str | None]:
        """(products, None) or (None, why not): from the cache while fresh."""
        from campaign import workflow

        with self._lock:
            if time.monotonic() < self._until:
                return self._products, self._error
            try:
                self._products, self._error = workflow.balance(settings).products, None
                self._until = time.monotonic() + FRESH_SECONDS
            except CampaignError as exc:
                self._products, self._error = None, str(exc)
                self._until = time.monotonic() + ERROR_SECONDS
            except Exception as exc:  # a balance is a nicety: never a failed page
                self._products, self._error = None, f"unexpected {type(exc).__name__}"
                self._until = time.monotonic() + ERROR_SECONDS
            return self._products, self._error


def cost_of(app: Any, segments: int) -> Cost:
    """The cost of `segments` against the balance of the app's gateway (cached per app)."""
    state = app.state
    cache: BalanceCache | None = getattr(state, "new_balance", None)
    if cache is None:
        cache = state.new_balance = BalanceCache()
    products, error = cache.get(state.settings)
    if products is None:
        return Cost(segments, None, None, None, error)
    configured = state.settings.gateway.product
    if configured and configured in products:
        product: str | None = configured
    elif len(products) == 1:
        product = next(iter(products))
    else:
        product = None
    enough = None if product is None else products[product] >= segments
    return Cost(segments, products, product, enough, None)


__all__ = ["BalanceCache", "Cost", "cost_of"]
