"""The protocol as data: code tables, report statuses, strict response parsing (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.gateway.protocol import (
    BALANCE_CODES,
    SUBMIT_CODES,
    Accepted,
    Action,
    Ambiguous,
    Balances,
    Refused,
    StatusGroup,
    balance_code_info,
    format_submit_response,
    parse_balance_response,
    parse_submit_response,
    report_status_info,
    submit_code_info,
)

EXPECTED_ACTIONS = {
    "0": Action.ACCEPTED,
    **dict.fromkeys(["103", "104"], Action.RETRY_LATER),
    **dict.fromkeys(["101", "102", "109", "111", "112", "117", "118", "119"], Action.STOP_RUN),
    "110": Action.WAIT_WINDOW,
    **dict.fromkeys(["105", "106", "107", "108", "113", "115", "116", "120"], Action.REFUSE_BATCH),
}


def test_every_submit_code_of_the_protocol_is_in_the_table() -> None:
    assert set(SUBMIT_CODES) == set(EXPECTED_ACTIONS)
    assert "114" not in SUBMIT_CODES  # the protocol skips 114


@pytest.mark.parametrize(("code", "action"), sorted(EXPECTED_ACTIONS.items()))
def test_submit_code_actions_and_meanings(code: str, action: Action) -> None:
    info = submit_code_info(code)
    assert info.code == code
    assert info.action is action
    assert info.zh and info.en
    assert code in info.description


@pytest.mark.parametrize("code", ["121", "999", "-1", "114"])
def test_unknown_submit_codes_are_kept_verbatim_and_never_success(code: str) -> None:
    info = submit_code_info(code)
    assert info.code == code
    assert info.action is Action.UNKNOWN_CODE
    assert "unknown" in info.en


def test_submit_code_meanings_match_the_chinese_original() -> None:
    assert submit_code_info("102").zh == "密码错"
    assert submit_code_info("109").en == "no quota left"
    assert submit_code_info("110").zh.startswith("不在发送时间内")


def test_balance_codes() -> None:
    assert set(BALANCE_CODES) == {"0", "101", "102", "103"}
    assert "10" in balance_code_info("103").en
    assert balance_code_info("103").action is Action.RETRY_LATER
    assert balance_code_info("102").action is Action.STOP_RUN
    assert balance_code_info("7").action is Action.UNKNOWN_CODE


@pytest.mark.parametrize(
    ("status", "group"),
    [
        ("DELIVRD", StatusGroup.DELIVERED),
        ("MBBLACK", StatusGroup.BLACKLIST),
        ("DB:0141", StatusGroup.BLACKLIST),
        ("MA:0001", StatusGroup.BLACKLIST),
        ("MX:0013", StatusGroup.BLACKLIST),
        ("ID:0101", StatusGroup.NUMBER),
        ("ID:0102", StatusGroup.NUMBER),
        ("ID:0103", StatusGroup.NUMBER),
        ("601", StatusGroup.NUMBER),
        ("NOROUTE", StatusGroup.CARRIER),
        ("ROUTEERR", StatusGroup.CARRIER),
        ("EMSERR", StatusGroup.CARRIER),
        ("ERR:104", StatusGroup.CARRIER),
        ("GL:0000", StatusGroup.CARRIER),
        ("SY1RESP:-9", StatusGroup.CARRIER),
        ("REJECT", StatusGroup.CONTENT),
        ("KEYWORD", StatusGroup.CONTENT),
        ("WHITESMS", StatusGroup.CONTENT),
        ("SIGNERR", StatusGroup.CONTENT),
        ("SIGFAIL", StatusGroup.CONTENT),
        ("DISTURB", StatusGroup.OTHER),
    ],
)
def test_report_status_groups(status: str, group: StatusGroup) -> None:
    info = report_status_info(status)
    assert info.status == status
    assert info.group is group
    assert info.zh and info.en
    assert info.delivered is (group is StatusGroup.DELIVERED)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("CMPP20ERR:123", "123"),
        ("SMGPERR:45", "45"),
        ("SGIPERR:9", "9"),
        ("CMPPRESP:77", "77"),
        ("SMGPRESP:1", "1"),
        ("SY1RESP:-3", "-3"),
    ],
)
def test_carrier_error_families(status: str, code: str) -> None:
    info = report_status_info(status)
    assert info.group is StatusGroup.CARRIER
    assert info.status == status
    assert f"carrier gateway error {code}" in info.en
    assert code in info.zh


@pytest.mark.parametrize("status", ["JA:0009", "UNDELIV", "EXPIRED", "weird status"])
def test_unknown_statuses_are_kept_verbatim(status: str) -> None:
    info = report_status_info(status)
    assert info.status == status
    assert info.group is StatusGroup.OTHER
    assert not info.delivered


def test_status_lookup_trims_and_ignores_case() -> None:
    assert report_status_info(" delivrd ").group is StatusGroup.DELIVERED
    assert report_status_info(" delivrd ").status == "delivrd"


# --------------------------------------------------------------------------- parsing


def test_accepted_exactly_like_the_protocol_example() -> None:
    result = parse_submit_response(200, "20110725160412,0\n1234567890100", needstatus=True)
    assert result == Accepted("1234567890100", "20110725160412")


@pytest.mark.parametrize(
    "body",
    [
        "20110725160412,0\r\n1234567890100\r\n",
        "  20110725160412,0 \n 1234567890100 \n\n",
        "20110725160412,0\n1234567890100\n",
        "\ufeff20110725160412,0\n1234567890100",
    ],
)
def test_crlf_and_whitespace_are_tolerated(body: str) -> None:
    assert parse_submit_response(200, body, True) == Accepted("1234567890100", "20110725160412")


@pytest.mark.parametrize("code", sorted(set(EXPECTED_ACTIONS) - {"0"}, key=int))
def test_every_refusal_code(code: str) -> None:
    result = parse_submit_response(200, f"20110725160412,{code}", needstatus=True)
    assert isinstance(result, Refused)
    assert result.code == code
    assert result.action is EXPECTED_ACTIONS[code]
    assert result.response_time == "20110725160412"
    assert code in result.reason


@pytest.mark.parametrize("code", ["121", "999"])
def test_unknown_refusal_code(code: str) -> None:
    result = parse_submit_response(200, f"20110725160412,{code}\n", needstatus=True)
    assert isinstance(result, Refused)
    assert result.code == code
    assert result.action is Action.UNKNOWN_CODE


def test_code_zero_without_msgid_needs_status_is_ambiguous() -> None:
    result = parse_submit_response(200, "20110725160412,0", needstatus=True)
    assert isinstance(result, Ambiguous)
    assert "msgid" in result.reason


def test_code_zero_without_msgid_no_status_is_accepted() -> None:
    assert parse_submit_response(200, "20110725160412,0", needstatus=False) == Accepted(
        "", "20110725160412"
    )
    assert parse_submit_response(200, "20110725160412,0\n42", needstatus=False) == Accepted(
        "42", "20110725160412"
    )


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (500, "20110725160412,0\n1", "HTTP 500"),
        (502, "<html><body>502 Bad Gateway</body></html>", "HTML"),
        (403, "forbidden", "HTTP 403"),
        (200, "<!DOCTYPE html><html>oops</html>", "HTML"),
        (200, "", "empty"),
        (200, "  \r\n ", "empty"),
        (200, "20110725160412", "first line"),
        (200, "20110725160412,abc", "first line"),
        (200, "2011072516041,0\n1", "first line"),
        (200, "20110725160412;0\n1", "first line"),
        (200, "OK", "first line"),
        (200, "20110725160412,0\nabc", "msgid"),
        (200, "20110725160412,0\n١٢٣", "msgid"),
        (200, "２0110725160412,0\n1", "first line"),
        (200, "20110725160412,0\n123\nmore", "extra"),
        (200, "20110725160412,101\n123", "unexpected lines"),
    ],
)
def test_malformed_answers_are_ambiguous(status: int, body: str, words: str) -> None:
    """Also an HTTP error page: the request may have been processed before it failed."""
    result = parse_submit_response(status, body, needstatus=True)
    assert isinstance(result, Ambiguous), result
    assert words in result.reason
    assert "may have been sent" in result.reason


def test_balance_answer_like_the_protocol_example() -> None:
    result = parse_balance_response(200, "20130303180000,0\n1234567,1000\n1234531,2000")
    assert result == Balances({"1234567": 1000, "1234531": 2000}, "20130303180000")
    assert list(result.products) == ["1234567", "1234531"]


@pytest.mark.parametrize("code", ["101", "102", "103"])
def test_balance_refusals(code: str) -> None:
    result = parse_balance_response(200, f"20130303180000,{code}")
    assert isinstance(result, Refused)
    assert result.info == balance_code_info(code)


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "oops"), (200, ""), (200, "<html></html>"), (200, "20130303180000,0\n1001:5")],
)
def test_malformed_balance_answers(status: int, body: str) -> None:
    assert isinstance(parse_balance_response(status, body), Ambiguous)


def test_format_round_trips() -> None:
    assert format_submit_response("20110725160412", "0", "1234567890100") == (
        "20110725160412,0\n1234567890100"
    )
    assert format_submit_response("20110725160412", "101") == "20110725160412,101"


@given(status=st.integers(100, 599), body=st.text(max_size=200), needstatus=st.booleans())
def test_parsing_never_raises_and_only_code_zero_is_accepted(
    status: int, body: str, needstatus: bool
) -> None:
    result = parse_submit_response(status, body, needstatus)
    assert isinstance(result, Accepted | Refused | Ambiguous)
    if isinstance(result, Accepted):
        assert 200 <= status < 300 and body.strip().split("\n")[0].strip().endswith(",0")
    balance = parse_balance_response(status, body)
    assert isinstance(balance, Balances | Refused | Ambiguous)


@pytest.mark.parametrize("status", [404, 405, 501])
def test_no_such_interface_means_nothing_was_sent(status: int) -> None:
    """A wrong base URL: no send handler saw the request; stop, do not mark unknown."""
    result = parse_submit_response(status, "<html>Not Found</html>", needstatus=True)
    assert isinstance(result, Refused), result
    assert result.action is Action.STOP_RUN
    assert "check the gateway base URL" in result.reason
    balance = parse_balance_response(status, "nope")
    assert isinstance(balance, Refused) and balance.action is Action.STOP_RUN
