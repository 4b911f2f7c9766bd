"""Text patterns more than one layer checks (no dependencies: the store may import it)."""

from __future__ import annotations

#: A mainland China mobile number in its normalized form (11 digits, 1[3-9]...).
VALID_MOBILE = r"^1[3-9][0-9]{9}$"
