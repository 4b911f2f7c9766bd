"""campaign.redact: no password in any form or piece survives; fields and URL credentials go."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.gateway.protocol import Ambiguous, parse_balance_response, parse_submit_response
from campaign.redact import (
    ECHOED,
    MASK,
    RedactingFilter,
    Redactor,
    forget_secrets,
    is_echo,
    redact,
    redact_fields,
    redact_url,
    register_secret,
    replace_secrets,
    url_secrets,
)

# Characters that URL-encode, that JSON or HTML escape, the mask's own, CJK, and plain ones.
ALPHABET = st.sampled_from(list("#&!+ %*'\"<>\\/=:@?;,.-_~") + list("aZ9qW3xk") + ["密", "码"])
PASSWORDS = st.text(ALPHABET, min_size=1, max_size=64) | st.text(min_size=1, max_size=64)
SURROUNDING = st.text(max_size=40) | st.text(ALPHABET, max_size=40)


def pieces(text: str, size: int = 4) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def upper_escapes(text: str) -> str:
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group(0).upper(), text)


def lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


FORMS = {
    "raw": lambda p: p,
    "quote": lambda p: quote(p, safe=""),
    "quote_slash": quote,
    "quote_plus": lambda p: quote_plus(p, safe=""),
    "lower_escapes": lambda p: lower_escapes(quote(p, safe="")),
    "lower_plus": lambda p: lower_escapes(quote_plus(p, safe="")),
}


def encoded(password: str) -> set[str]:
    return {quote(password, safe=""), quote_plus(password, safe=""), quote(password)}


def assert_gone(password: str, out: str) -> None:
    for piece in pieces(password):
        assert piece not in out, (piece, out)
    normal = upper_escapes(out)
    for form in encoded(password):
        for piece in pieces(form):
            assert piece not in normal, (piece, out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=PASSWORDS,
    before=SURROUNDING,
    after=SURROUNDING,
    form=st.sampled_from(sorted(FORMS)),
    cut=st.integers(min_value=0, max_value=64),
)
def test_no_piece_of_a_password_survives_in_any_form(password, before, after, form, cut):
    shown = FORMS[form](password)
    shown = shown[:cut] if cut else shown  # a message cut it anywhere
    out = Redactor([password]).redact(before + shown + after)
    assert_gone(password, out)


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(ALPHABET, min_size=1, max_size=3),
    form=st.sampled_from(["quote", "quote_plus", "lower_escapes", "lower_plus"]),
)
def test_a_short_password_goes_with_its_field_whatever_its_value(password, form):
    value = FORMS[form](password)  # a form field carries the value URL-encoded
    out = redact(f"20250101000000,x account=demo&pswd={value}&mobile=13900000001")
    assert out == f"20250101000000,x account=demo&pswd={MASK}&mobile=13900000001"
    json_ish = redact('{"account": "demo", "pswd": ' + json.dumps(password) + ', "n": 1}')
    assert json_ish == '{"account": "demo", "pswd": "' + MASK + '", "n": 1}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("account=a&pswd=x&mobile=1", f"account=a&pswd={MASK}&mobile=1"),
        ("PSWD=ab cd", f"PSWD={MASK} cd"),
        ("password=", f"password={MASK}"),
        (
            '{"account": "a", "pswd": "a\\"b", "n": 1}',
            f'{{"account": "a", "pswd": "{MASK}", "n": 1}}',
        ),
        ("{'password': 'ab'}", f"{{'password': '{MASK}'}}"),
        ("pswd: ab, next", f"pswd: {MASK}, next"),
        ("<pswd>ab</pswd>", f"<pswd>{MASK}</pswd>"),
        (
            "q=account%3Da%26pswd%3Dx%2523%26mobile%3D1",
            f"q=account%3Da%26pswd%3D{MASK}%26mobile%3D1",
        ),
        ("receiver=admin&pswd=12345&msgid=1", f"receiver=admin&pswd={MASK}&msgid=1"),
        ("wrong password (密码错)", "wrong password (密码错)"),
        ("the user_password=x", "the user_password=x"),  # not a password field of ours
    ],
)
def test_password_fields_go_whatever_their_value(text, expected):
    assert redact_fields(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@host/msg", f"http://{MASK}@host/msg"),
        ("https://user:p%40ss@host:8443/msg", f"https://{MASK}@host:8443/msg"),
        ("http://u:p@ss@host/msg", f"http://{MASK}@host/msg"),
        ("postgresql+psycopg://app:s3cret@db/campaign", f"postgresql+psycopg://{MASK}@db/campaign"),
        ("http://host/msg?mail=a@b", "http://host/msg?mail=a@b"),
        ("http://send.18sms.com/msg", "http://send.18sms.com/msg"),
    ],
)
def test_credentials_in_urls_go(url, expected):
    assert redact_url(url) == expected
    assert redact(f"cannot reach {url}: refused") == f"cannot reach {expected}: refused"


def test_url_secrets_are_the_password_as_written_and_decoded():
    assert url_secrets("http://u:p%40ss@h/") == ["p%40ss", "p@ss"]
    assert url_secrets("http://h/") == []
    assert url_secrets("http://[::1") == []


def test_text_without_secrets_is_unchanged():
    text = "gateway code 102: wrong password (密码错); the batch may have been sent"
    assert Redactor(["Zq9#Pw&x!SECRETz"]).redact(text) == text
    assert Redactor().redact("") == ""


def test_a_password_cut_at_40_characters_is_caught():
    password = "Lg7#k&!+ %" + "abcdefghij" * 4
    body = "account=demo&pswd=" + quote_plus(password)
    cut = f"unexpected first line {body[:60]!r}"
    out = Redactor([password]).redact(cut.replace("pswd=", "p="))  # no field to hold on to
    assert_gone(password, out)


def test_masks_next_to_each_other_do_not_rebuild_a_secret_with_stars():
    out = Redactor(["****"]).redact("x*****y ****")
    assert "****" not in out


def test_the_registry_holds_the_secrets_of_the_settings_of_this_run():
    forget_secrets()
    try:
        register_secret("Registered-secret-1")
        assert "Regi" not in redact("why: Registered-secret-1")
        replace_secrets("another-one")
        assert redact("Registered") == "Registered"
        assert redact("another-one") == MASK
    finally:
        forget_secrets()


def test_is_echo_sees_a_password_field():
    assert is_echo("account=a&pswd=1")
    assert is_echo('{"password": "x"}')
    assert is_echo("account%3Da%26pswd%3D1")
    assert not is_echo("20250101000000,0\n123")
    assert not is_echo("wrong password (密码错)")


@pytest.mark.parametrize("status", [200, 500, 502])
def test_the_protocol_never_quotes_an_answer_that_echoes_the_request(status):
    body = "Bad request: account=demo&pswd=ab&mobile=13900000001&msg=hi"
    for result in (parse_submit_response(status, body, True), parse_balance_response(status, body)):
        assert isinstance(result, Ambiguous)
        assert ECHOED in result.reason
        assert "ab&" not in result.reason and "13900000001" not in result.reason


def test_the_protocol_still_quotes_a_plain_malformed_answer():
    result = parse_submit_response(200, "hello world", True)
    assert isinstance(result, Ambiguous) and "'hello world'" in result.reason


def test_log_lines_and_tracebacks_are_redacted(caplog):
    forget_secrets()
    replace_secrets("Tr4ceback-secret")
    logger = logging.getLogger("campaign.test_redact")
    handler = logging.Handler()
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("answer %s", "account=a&pswd=xy&mobile=1")
        try:
            raise ValueError("Tr4ceback-secret in http://u:pw@host/")
        except ValueError:
            logger.exception("failed with %s", "Tr4ceback-secret")
    finally:
        logger.removeHandler(handler)
        forget_secrets()
    text = "\n".join(lines)
    assert f"pswd={MASK}" in text
    assert "Tr4c" not in text and "u:pw" not in text
    assert "ValueError" in text


def test_the_simulators_documented_demo_password_is_not_masked():
    from campaign.gateway.simconfig import DEMO_PASSWORD

    text = "campaign demo: wrong password for account demo"
    assert Redactor([DEMO_PASSWORD]).redact(text) == text
    assert Redactor([DEMO_PASSWORD, "Zq9#Pw"]).redact("x Zq9#Pw y") == "x *** y"
