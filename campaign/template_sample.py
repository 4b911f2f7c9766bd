"""A template tried on the first rows of a contact list: the console's live sample.

The rows are planned exactly as a send plans them (`make_plan` on those rows: the
signature and the opt-out text added where the rules say, segments, sensitive words,
empty cells), without the suppression list or the cap (the full preview has those).
With the texts come the compliance notes a sender checks before sending: whether the
texts carry a signature, whether an opt-out text is added, which sensitive words they hit.
Pure: reads the sensitive-word file of the settings, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from campaign.config import Settings
from campaign.contacts import ContactList
from campaign.errors import InputError
from campaign.messages import Template, utf16_length
from campaign.plan import make_plan, plan_options
from campaign.plan_sample import is_signed, mask_mobile

#: Rows of the list a sample shows.
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class SampleRow:
    source: str
    source_row: int
    mobile: str  # masked: 138****8000
    text: str  # the message as it would go out ("" when the row would not be sent)
    length: int  # characters as the gateway counts them (UTF-16 units)
    segments: int  # billed parts
    outcome: str  # as the plan decides (without the suppression list and the cap)
    reason: str


@dataclass(frozen=True)
class TemplateSample:
    """The first rows rendered, and the compliance notes; `problem` when the template
    cannot be used at all (unbalanced braces, an unknown column, too long, ...)."""

    rows: list[SampleRow]
    problem: str | None
    columns_used: list[str]
    signature: str  # [compliance] signature ("" none): added where a text has none
    signed: bool  # the texts start with a 【…】 signature (configured or written)
    optout_text: str  # [compliance] optout_text ("" none): appended where missing
    sensitive_words: int  # words in the configured list (0: no list)
    sensitive_hits: list[str]  # words of the list found in the template or the texts


def template_sample(
    settings: Settings, contacts: ContactList, template: str, rows: int = SAMPLE_ROWS
) -> TemplateSample:
    """`template` rendered for the first `rows` rows of `contacts` (see the module
    docstring). A ConfigError of the settings (an unreadable word list) is raised."""
    options = plan_options(settings)
    words = options.sensitive_words
    compliance = settings.compliance
    base = TemplateSample(
        [], None, [], compliance.signature, bool(compliance.signature) or is_signed(template),
        compliance.optout_text, len(words) if words is not None else 0, [],
    )  # fmt: skip
    try:
        parsed = Template.parse(template, options.limits).resolved(contacts.columns)
        parsed.check_columns(contacts.columns)
        head = contacts.frame.head(max(1, rows))
        plan = make_plan(
            ContactList(head, contacts.columns, contacts.files),
            template,
            options,
            allow_nothing_valid=True,
        )
    except InputError as exc:
        return replace(base, problem=str(exc))
    found = []
    for (_, row), (_, cells) in zip(plan.rows.iterrows(), head.iterrows(), strict=True):
        text = _text(row["message"])
        mobile = _text(row["normalized_mobile"]) or _text(cells["_mobile_raw"])
        found.append(
            SampleRow(
                str(cells["_source"]),
                int(cells["_source_row"]),
                mask_mobile(mobile) if mobile else "",
                text,
                utf16_length(text),
                int(row["segments"]) if text else 0,
                str(row["outcome"]),
                _text(row["reason"]),
            )
        )
    texts = [template, *(row.text for row in found if row.text)]
    hits = []
    if words is not None and len(words):
        hits = list(dict.fromkeys(w for w in words.first_matches(texts) if w is not None))
    signed = base.signed or any(is_signed(row.text) for row in found if row.text)
    return replace(
        base, rows=found, columns_used=parsed.columns, signed=signed, sensitive_hits=hits
    )


def _text(value: object) -> str:
    return "" if value is None or value != value else str(value)  # NaN != NaN


__all__ = ["SAMPLE_ROWS", "SampleRow", "TemplateSample", "template_sample"]
