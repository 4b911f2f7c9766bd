"""campaign.outcomes: the words of SPEC, as StrEnums that serialize as plain text."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from campaign.outcomes import (
    ACCEPTED_OUTCOMES,
    PLAN_OUTCOMES,
    RESULT_OUTCOMES,
    BatchState,
    CampaignState,
    Outcome,
)
from campaign.store.breakdowns import breakdown_frame


def test_members_are_the_words_of_spec():
    assert [str(o) for o in RESULT_OUTCOMES] == [
        "delivered", "failed", "pending", "rejected", "unknown",
        "invalid", "duplicate", "suppressed", "capped", "cancelled", "unsent",
    ]  # fmt: skip
    assert [str(o) for o in PLAN_OUTCOMES] == [
        "ready", "invalid", "duplicate", "suppressed", "capped", "unsent",
    ]  # fmt: skip
    assert ACCEPTED_OUTCOMES == ("delivered", "failed", "pending")
    assert CampaignState.SENDING == "sending" and BatchState.UNKNOWN == "unknown"


def test_members_serialize_as_plain_text():
    assert json.dumps({Outcome.READY: [BatchState.ACCEPTED]}) == '{"ready": ["accepted"]}'
    assert f"{Outcome.CAPPED}" == "capped" and type(str(Outcome.CAPPED)) is str
    assert pa.array([Outcome.FAILED]).to_pylist() == ["failed"]


def test_breakdown_columns_are_plain_strings():
    long = pd.DataFrame({"carrier": ["a"], "outcome": ["delivered"], "n": [2]})
    frame = breakdown_frame(long, "carrier")
    assert all(type(c) is str for c in frame.columns)
    assert list(frame.columns) == ["carrier", "rows", *map(str, RESULT_OUTCOMES), "delivery_rate"]
