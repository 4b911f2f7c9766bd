"""What the sender sees of a plan before sending: one rendered sample, and warnings.

SPEC "Repeats, caps and what the sender sees before sending": `plan` and the `send`
confirmation show the first ready recipient's message, its number masked
(`138****8000`); a plan whose texts carry no signature is warned about, since gateways
refuse unsigned texts (code 116). Pure: no I/O, no printing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign.plan import Plan

_SIGNATURE = re.compile(r"^\s*【[^【】]+】")
UNSIGNED_WARNING = (
    "no signature: neither [compliance] signature is configured nor does the text start "
    "with a 【…】 signature; gateways refuse unsigned texts (code 116)"
)


def mask_mobile(mobile: str) -> str:
    """`13800138000` -> `138****8000`: the first 3 and the last 4 digits."""
    if len(mobile) < 8:
        return "*" * len(mobile)
    return f"{mobile[:3]}****{mobile[-4:]}"


def sample_message(plan: Plan) -> dict[str, Any] | None:
    """The first ready recipient's message: {mobile (masked), text, segments}; None when
    nobody is ready."""
    first = plan.columns.first_ready()
    if first is None:
        return None
    mobile, text, segments = first
    return {"mobile": mask_mobile(mobile), "text": text, "segments": segments}


def is_signed(text: str) -> bool:
    """Whether a text starts with a 【…】 signature."""
    return bool(_SIGNATURE.match(text))


def plan_warnings(plan: Plan, sample: dict[str, Any] | None = None) -> list[str]:
    """Problems that do not stop a plan but would make the gateway refuse it."""
    signed = bool(plan.options.signature) or is_signed(plan.template)
    if not signed and sample is not None:
        signed = is_signed(sample["text"])  # e.g. "{brand}..." with 【…】 in the column
    return [] if signed else [UNSIGNED_WARNING]
