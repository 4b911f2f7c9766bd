"""Templates, compliance, segments and sensitive words (campaign.messages)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.errors import ConfigError, TemplateError
from campaign.messages import (
    MAX_LENGTH,
    MAX_TEMPLATE_BYTES,
    MAX_TEMPLATE_CHARS,
    Placeholder,
    SensitiveWords,
    Template,
    apply_compliance,
    check_template_text,
    count_segments,
    load_template,
    segment_counts,
    utf16_length,
    utf16_lengths,
)


def frame(**columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values, dtype="str") for name, values in columns.items()})


# --- parsing -----------------------------------------------------------------------------


def test_parse_placeholders_fallbacks_and_literal_braces():
    template = Template.parse("{姓名|尊敬的会员}您好{{VIP}}，积分{ 积分 }分{城市|}")
    assert template.placeholders == [
        Placeholder("姓名", "尊敬的会员", 1),
        Placeholder("积分", None, 23),
        Placeholder("城市", "", 30),
    ]
    assert template.parts[1] == "您好{VIP}，积分"
    assert template.columns == ["姓名", "积分", "城市"]


def test_plain_text_has_no_placeholders():
    template = Template.parse("双十一全场五折")
    assert template.placeholders == []
    assert template.parts == ("双十一全场五折",)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("您好{姓名", "'{' at position 3 is not closed"),
        ("您好}姓名", "'}' at position 3 has no opening"),
        ("a{b{c}}", "'{' at position 2 is not closed"),
        ("a{}", "empty placeholder at position 2"),
        ("a{ |x}", "empty placeholder at position 2"),
    ],
)
def test_unbalanced_braces_name_the_position(text, fragment):
    with pytest.raises(TemplateError, match="position") as info:
        Template.parse(text)
    assert fragment in str(info.value)


def test_missing_column_lists_available_columns():
    template = Template.parse("{姓名}您好，{积分}分{等级}")
    template.check_columns(["姓名", "积分", "等级"])
    with pytest.raises(TemplateError) as info:
        template.check_columns(["姓名", "手机号码", "城市"])
    message = str(info.value)
    assert "columns 积分, 等级" in message
    assert "columns available: 姓名, 手机号码, 城市" in message


# --- rendering ---------------------------------------------------------------------------


def test_render_concatenates_whole_columns():
    data = frame(
        姓名=["张三", " ", "李四", ""], 积分=["10", "20", " ", "5"], 城市=["", "北京", "上海", ""]
    )
    result = Template.parse("{姓名|会员}您好，积分{积分}分{城市|}。").render(data)
    assert result.text.tolist() == [
        "张三您好，积分10分。",
        "会员您好，积分20分北京。",
        "李四您好，积分分上海。",
        "会员您好，积分5分。",
    ]
    assert result.missing.tolist() == ["", "", "积分", ""]


def test_render_missing_names_the_first_empty_column():
    data = frame(a=["", "x", "x"], b=["", "", "y"])
    result = Template.parse("{a}{b}{a}").render(data)
    assert result.missing.tolist() == ["a", "b", ""]


def test_render_values_are_stripped_and_nan_is_empty():
    data = pd.DataFrame({"名": [" 王五 ", None]}, dtype=object)
    result = Template.parse("[{名|?}]").render(data)
    assert result.text.tolist() == ["[王五]", "[?]"]


def test_render_keeps_the_index():
    data = frame(a=["1", "2", "3"]).iloc[[2, 0]]
    result = Template.parse("x{a}").render(data)
    assert result.text.to_dict() == {2: "x3", 0: "x1"}


def test_render_without_placeholders_gives_the_same_text():
    result = Template.parse("通知{{}}").render(frame(a=["1", "2"]))
    assert result.text.tolist() == ["通知{}", "通知{}"]
    assert result.missing.tolist() == ["", ""]


# --- load_template -----------------------------------------------------------------------


def test_load_template_reads_the_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\ufeff{姓名}您好\n", encoding="utf-8")
    assert load_template(str(path)) == "{姓名}您好"
    assert load_template(path) == "{姓名}您好"
    assert load_template("t.txt", base=tmp_path) == "{姓名}您好"


def test_load_template_errors(tmp_path):
    with pytest.raises(TemplateError, match=r"^no template file x\.txt$"):
        load_template("x.txt", base=tmp_path)
    with pytest.raises(TemplateError, match=r"^no template file x; use --text$"):
        load_template("x", base=tmp_path, hint="use --text")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(TemplateError, match="empty"):
        load_template(str(tmp_path / "empty.txt"))
    (tmp_path / "gbk.txt").write_bytes("您好".encode("gbk"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template(str(tmp_path / "gbk.txt"))
    with pytest.raises(TemplateError, match="is a folder"):
        load_template(str(tmp_path))
    (tmp_path / "big.txt").write_bytes(b"a" * (MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(TemplateError, match="larger than"):
        load_template(str(tmp_path / "big.txt"))


def test_template_text_given_inline_is_checked():
    assert check_template_text("  {姓名}您好\r\n回复有礼 ") == "{姓名}您好\n回复有礼"
    with pytest.raises(TemplateError, match="empty"):
        check_template_text(" \n ")
    with pytest.raises(TemplateError, match="longer than"):
        check_template_text("a" * (MAX_TEMPLATE_CHARS + 1))


# --- compliance --------------------------------------------------------------------------


def test_signature_added_only_without_one():
    texts = pd.Series(["【品牌】您好", "【别家】您好", "您好【品牌】", "您好"], dtype="str")
    assert apply_compliance(texts, "【品牌】", "").tolist() == [
        "【品牌】您好",
        "【别家】您好",
        "【品牌】您好【品牌】",
        "【品牌】您好",
    ]


def test_optout_appended_only_when_missing():
    texts = pd.Series(["您好", "您好回T退订", "回T退订您好"], dtype="str")
    assert apply_compliance(texts, "", "回T退订").tolist() == [
        "您好回T退订",
        "您好回T退订",
        "回T退订您好回T退订",
    ]


def test_no_compliance_settings_change_nothing():
    texts = pd.Series(["您好", ""], dtype="str")
    assert apply_compliance(texts).tolist() == ["您好", ""]


def test_both_compliance_parts():
    texts = pd.Series(["您好"], dtype="str")
    assert apply_compliance(texts, "【品牌】", "回T退订").tolist() == ["【品牌】您好回T退订"]


# --- segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (160, 3), (201, 3), (202, 4), (536, 8)],
)
def test_segments(length, segments):
    assert count_segments("短" * length) == segments
    assert segment_counts(pd.Series(["a" * length])).tolist() == [segments]


def test_emoji_counts_two_units():
    assert utf16_length("😀") == 2
    assert utf16_length("a😀中") == 4
    assert count_segments("😀" * 35) == 1
    assert count_segments("😀" * 35 + "a") == 2
    assert utf16_lengths(pd.Series(["😀😀", "中文", ""])).tolist() == [4, 2, 0]


def test_empty_text_has_no_segments():
    assert count_segments("") == 0
    assert MAX_LENGTH == 536


def test_segment_counts_keeps_index_and_dedupes():
    texts = pd.Series(["a" * 71, "b", "a" * 71], index=[5, 6, 7])
    assert segment_counts(texts).to_dict() == {5: 2, 6: 1, 7: 2}


# --- sensitive words ---------------------------------------------------------------------


def test_sensitive_words_from_file(tmp_path):
    words = [f"违禁词{i:04d}" for i in range(5000)] + ["", "  发票  ", "VIP", "赌博"]
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n\n", encoding="utf-8")
    sensitive = SensitiveWords.load(path)
    assert len(sensitive) == 5003
    assert sensitive.first_match("代开发票，请联系") == "发票"
    assert sensitive.first_match("尊贵的vip会员") == "VIP"
    assert sensitive.first_match("这里含有违禁词4321哦") == "违禁词4321"
    assert sensitive.first_match("一条干净的短信") is None
    texts = ["干净", "违禁词0001和赌博", "", "赌博", "发票\n赌博", "票发"]
    assert sensitive.first_matches(texts) == [None, "违禁词0001", None, "赌博", "发票", None]


def test_words_never_match_across_texts():
    sensitive = SensitiveWords(["发票"])
    assert sensitive.first_matches(["代开发", "票据"]) == [None, None]
    assert SensitiveWords([]).first_matches(["发票"]) == [None]


def test_missing_words_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SensitiveWords.load(tmp_path / "nope.txt")


# --- compliance folded into rendering: the same as applying it afterwards -----------------


def naive_render(template: str, rows: list[dict[str, str]], signature: str, optout: str):
    """Reference: per row, the obvious way."""
    parsed = Template.parse(template)
    texts = []
    for row in rows:
        text = ""
        for part in parsed.parts:
            if isinstance(part, str):
                text += part
            else:
                value = row[part.column].strip()
                text += value if value or part.fallback is None else part.fallback
        if signature and not re.match(r"^【[^【】]+】", text):
            text = signature + text
        if optout and not text.endswith(optout):
            text += optout
        texts.append(text)
    return texts


def test_folded_compliance_edge_cases():
    data = frame(
        a=["【品牌】你好", "【品", "", "x回T退", "回T退订", "", "😀"],
        b=["", "牌】好", "【别家】", "订", "", "退订", "回T退订"],
    )
    for template in ("{a}{b}", "{a|【默认】}{b|回T}", "【品牌】{a}", "{a}回T退订", "{{{a}}}{b}"):
        expected = naive_render(template, data.to_dict("records"), "【品牌】", "回T退订")
        folded = Template.parse(template).render(data, "【品牌】", "回T退订").text.tolist()
        after = apply_compliance(Template.parse(template).render(data).text, "【品牌】", "回T退订")
        assert folded == expected, template
        assert after.tolist() == expected, template


cell_text = st.one_of(  # repeated values too: each distinct combination is rendered once
    st.sampled_from(["", "a ", "【x】", "回T退订"]),
    st.text(alphabet=st.sampled_from(list("【】回T退订ab 😀")), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    template=st.lists(
        st.sampled_from(
            ["{a}", "{b|回T}", "{a|【x】}", "{b|a}", "【", "】", "订", "回T退订", "z", "{{", "T"]
        ),
        max_size=5,
    ).map("".join),
    a=st.lists(cell_text, min_size=1, max_size=12),
    b=st.lists(cell_text, min_size=1, max_size=12),
    signature=st.sampled_from(["", "【品牌】"]),
    optout=st.sampled_from(["", "回T退订", "T"]),
)
def test_folded_compliance_matches_the_reference(template, a, b, signature, optout):
    size = min(len(a), len(b))
    data = frame(a=a[:size], b=b[:size])
    expected = naive_render(template, data.to_dict("records"), signature, optout)
    result = Template.parse(template).render(data, signature, optout)
    assert result.text.tolist() == expected
    # same code exactly where the same text, numbered by first appearance
    assert result.codes.tolist() == pd.factorize(pd.Series(expected))[0].tolist()
    holes = [
        next(
            (
                p.column
                for p in Template.parse(template).placeholders
                if p.fallback is None and not row[p.column].strip()
            ),
            "",
        )
        for row in data.to_dict("records")
    ]
    assert result.missing.tolist() == holes
    lengths = utf16_lengths(result.text).tolist()
    assert lengths == [utf16_length(t) for t in expected]
    if result.bmp_only:
        assert lengths == [len(t) for t in expected]


def test_sensitive_scan_in_chunks(monkeypatch):
    import campaign.messages as messages

    monkeypatch.setattr(messages, "SCAN_CHUNK", 2)
    sensitive = SensitiveWords(["发票", "赌"])
    texts = ["a", "发票", "b", "赌", "c发票"]
    assert sensitive.first_matches(texts) == [None, "发票", None, "赌", "发票"]


@pytest.mark.parametrize(
    "arg", ["./notice", "../t/vip", "/no/such/file", "~/x", "vip.TXT", "marketing", "全场5折"]
)
def test_a_name_of_no_file_is_never_the_text(tmp_path, arg):
    with pytest.raises(TemplateError, match="no template file"):
        load_template(arg, base=tmp_path)
