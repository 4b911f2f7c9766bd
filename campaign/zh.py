"""Chinese for what the result spreadsheet shows (`export --lang zh`): one place.

Outcomes, carriers, campaign and batch states, the result column headers and the sheet
names are tables. Reasons are made in English where they arise (phones, plan, sender,
gateway client and protocol, jobs); `reason_zh` turns each one into Chinese with a table of
patterns that keep the figures, names and codes in it ("message too long: 612 characters,
..." -> "短信过长：612 个字符，..."). A reason that embeds another one ("not sent: could
not connect ...") has that part translated too. A text that no pattern knows is returned
as it is (tests/test_export_zh.py checks that every reason the tool makes is known).

Every function here works on one distinct value; callers map columns per distinct value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from campaign.gateway.protocol import no_such_interface, submit_code_info

OUTCOMES_ZH: Mapping[str, str] = {
    "ready": "待发送",
    "delivered": "成功",
    "failed": "失败",
    "pending": "等待回执",
    "rejected": "被拒绝",
    "unknown": "结果未知",
    "invalid": "无效",
    "duplicate": "重复",
    "suppressed": "已退订/屏蔽",
    "capped": "超出频次",
    "cancelled": "已取消",
    "unsent": "未发送",
}

CARRIERS_ZH: Mapping[str, str] = {
    "China Mobile": "中国移动",
    "China Unicom": "中国联通",
    "China Telecom": "中国电信",
    "China Broadnet": "中国广电",
}

#: Campaign states (store/campaigns.py) and batch states (store/batches.py).
STATES_ZH: Mapping[str, str] = {
    "planned": "已计划",
    "scheduled": "已预约",
    "queued": "排队中",
    "sending": "发送中",
    "paused": "已暂停",
    "stopped": "已停止",
    "cancelled": "已取消",
    "finished": "已完成",
    "pending": "待发送",
    "accepted": "网关已接收",
    "rejected": "被拒绝",
    "unknown": "结果未知",
    "unsent": "未发送",
}

#: Headers of the result columns (SPEC names -> Chinese); `--lang en` keeps the SPEC names.
RESULT_COLUMNS_ZH: Mapping[str, str] = {
    "source": "来源文件",
    "source_row": "行号",
    "normalized_mobile": "手机号码",
    "carrier": "运营商",
    "outcome": "结果",
    "reason": "原因",
    "message": "短信内容",
    "segments": "计费条数",
    "batch_id": "批次",
    "msgid": "消息ID",
    "submit_code": "提交状态码",
    "dlr_status": "回执状态",
    "dlr_description": "回执说明",
    "report_time": "回执时间",
}

SHEETS_ZH: Mapping[str, str] = {
    "results": "结果",
    "summary": "汇总",
    "by status": "按回执状态",
    "by carrier": "按运营商",
    "by source": "按来源文件",
    "by hour": "按小时",
}


def outcome_zh(outcome: str) -> str:
    return OUTCOMES_ZH.get(outcome, outcome)


def carrier_zh(carrier: str) -> str:
    return CARRIERS_ZH.get(carrier, carrier)


def state_zh(state: str) -> str:
    return STATES_ZH.get(state, state)


# ---------------------------------------------------------------------------------------------
# Reasons.

Groups = Mapping[str, str]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    zh: str | Callable[[Groups], str]  # str.format over the groups, or a function of them
    nested: tuple[str, ...]  # groups that are reasons themselves: translated first


def _rule(pattern: str, zh: str | Callable[[Groups], str], *nested: str) -> _Rule:
    return _Rule(re.compile(pattern, re.DOTALL), zh, nested)


def _gateway_code(groups: Groups) -> str:
    code = groups["code"]
    if code.startswith("HTTP ") and code[5:].isdigit():
        meaning = no_such_interface(int(code[5:])).zh
    else:
        meaning = submit_code_info(code).zh
    return f"网关代码 {code}：{meaning}"


MAYBE_SENT = "可能已发出"

#: English reason (the whole text) -> Chinese; the first pattern that matches wins.
RULES: tuple[_Rule, ...] = (
    # phones.py: why a cell is no valid mobile
    _rule(r"empty mobile", "手机号码为空"),
    _rule(r"contains letters", "号码中含有字母"),
    _rule(
        r"not a mainland China mobile \(must start 13-19\)",
        "不是中国大陆手机号码（须以 13–19 开头）",
    ),
    _rule(
        r"not a mainland China number \(foreign country code\)", "不是中国大陆号码（外国国家代码）"
    ),
    _rule(r"contains several numbers", "含有多个号码"),
    _rule(
        r"mobile in scientific notation lost digits in Excel \((?P<cell>.*)\)",
        "号码在 Excel 中成了科学计数法，丢失了数字（{cell}）",
    ),
    _rule(
        r"contains characters other than digits \((?P<char>.*)\)", "含有数字以外的字符（{char}）"
    ),
    _rule(r"wrong length: (?P<n>\d+) digits?", "位数不对：{n} 位"),
    # plan.py and messages.py
    _rule(r"same number as (?P<source>.*) row (?P<row>\d+)", "与 {source} 第 {row} 行的号码相同"),
    _rule(r"on the suppression list", "在退订/屏蔽名单中"),
    _rule(
        r"already sent (?P<n>\d+) messages? in the last (?P<h>[\d.]+) h "
        r"\(max_per_recipient = (?P<limit>\d+)\)",
        "{h} 小时内已发送 {n} 条（每个号码上限 {limit} 条）",
    ),
    _rule(r"empty value in column (?P<column>.*)", "“{column}”列的值为空"),
    _rule(r"message contains the sensitive word (?P<word>.*)", "短信含有敏感词“{word}”"),
    _rule(
        r"message too long: (?P<n>\d+) characters, more than the (?P<max>\d+) "
        r"\((?P<parts>\d+) parts\) one message may have",
        "短信过长：{n} 个字符，超过一条短信最多的 {max} 个字符（{parts} 条）",
    ),
    _rule(r"message is empty", "短信内容为空"),
    _rule(
        r"only (?P<n>\d+) recipients? with this text, below the minimum group size "
        r"(?P<min>\d+) \(the gateway would refuse it with 108\)",
        "此内容只有 {n} 个号码，少于最小群发数 {min}（网关会以代码 108 拒绝）",
    ),
    # cancel (any wording that says the campaign was cancelled)
    _rule(r"(?:not sent: )?(?:the )?campaign (?:was )?cancelled\b.*", "活动已取消，此行未发送"),
    # sender.py: batch details and stop reasons
    _rule(r"(?P<why>.*); resume then", "{why}；届时再继续发送", "why"),
    _rule(r"(?P<why>.*); resume later", "{why}；请稍后继续发送", "why"),
    _rule(
        r"max_per_day reached: the rest waits for the next day's run",
        "已达每日发送上限：其余号码等次日运行时发送",
    ),
    _rule(r"interrupted by the user", "被用户中断"),
    _rule(r"not sent: (?P<why>.*)", "未发出：{why}", "why"),
    _rule(r"retried after (?P<why>.*)", "重试过（{why}）", "why"),
    _rule(r"gateway code (?P<code>[^:]+): .*", _gateway_code),
    _rule(r"gateway unreachable: (?P<why>.*)", "网关不可达：{why}", "why"),
    _rule(
        r"the gateway kept refusing for (?P<s>\d+) s "
        r"\((?P<n>\d+) times in a row; last: (?P<why>.*)\)",
        "网关持续拒绝了 {s} 秒（连续 {n} 次；最后一次：{why}）",
        "why",
    ),
    _rule(r"the store failed: (?P<error>.*)", "数据库出错：{error}"),
    _rule(
        r"the gateway refused the balance query: (?P<why>.*)", "网关拒绝了余额查询：{why}", "why"
    ),
    _rule(
        r"the balance of product (?P<product>\S+) is (?P<balance>-?\d+) segments, "
        r"but (?P<need>\d+) billed segments are still to send; top up the account, or use --force",
        "产品 {product} 的余额为 {balance} 条，还有 {need} 条计费短信要发；"
        "请充值，或加 --force 发送",
    ),
    _rule(
        r"outside the send window (?P<window>\S+) \(China time\); "
        r"it opens at (?P<at>[\d-]+ [\d:]+) \(in (?P<h>\d+) h (?P<m>\d+) min\)",
        "不在发送时段 {window}（北京时间）内；{at} 开始（{h} 小时 {m} 分钟后）",
    ),
    # jobs.py
    _rule(
        r"not_after (?P<at>\d\d:\d\d) \(China time\) passed during the run: no more batches "
        r"claimed; the rest waits for (?P<next>.*)",
        "运行中已到截止时间 {at}（北京时间）：不再领取新批次；其余的等{next}",
        "next",
    ),
    _rule(
        r"not_after (?P<at>\d\d:\d\d) \(China time\) has passed; the rest waits for (?P<next>.*)",
        "已过截止时间 {at}（北京时间）；其余的等{next}",
        "next",
    ),
    _rule(
        r"found after not_after (?P<at>\d\d:\d\d) \(China time\); waits for (?P<next>.*)",
        "在截止时间 {at}（北京时间）之后才找到；等{next}",
        "next",
    ),
    _rule(r"waits for send_at (?P<at>\d\d:\d\d) \(China time\)", "等发送时间 {at}（北京时间）"),
    _rule(r"tomorrow \(from 00:00 China time\)", "明天（北京时间 00:00 起）"),
    _rule(r"tomorrow's send_at (?P<at>\d\d:\d\d)", "明天的发送时间 {at}"),
    _rule(
        r"not started by not_after (?P<at>\d\d:\d\d) China time; left unsent",
        "未能在 {at}（北京时间）前开始，未发送",
    ),
    # gateway/client.py: the request did not leave, or may have
    _rule(
        r"could not connect to the gateway \(connect timeout\): (?P<cause>.*)",
        "无法连接网关（连接超时）",
    ),
    _rule(r"TLS handshake with the gateway failed: (?P<cause>.*)", "与网关的 TLS 握手失败"),
    _rule(r"invalid gateway URL \((?P<name>.*)\)", "网关地址无效（{name}）"),
    _rule(r"could not connect to the gateway: (?P<cause>.*)", "无法连接网关"),
    _rule(
        r"no answer from the gateway before the timeout; it may have been sent",
        f"超时前网关没有应答；{MAYBE_SENT}",
    ),
    _rule(
        r"the connection failed after sending \((?P<name>\w+)(?:: (?P<cause>.*))?\); "
        r"it may have been sent",
        f"请求发出后连接中断（{{name}}）；{MAYBE_SENT}",
    ),
    _rule(
        r"the send failed unexpectedly \((?P<name>\w+)\); it may have been sent",
        f"发送时出现意外错误（{{name}}）；{MAYBE_SENT}",
    ),
    # gateway/protocol.py: answers that are not the protocol
    _rule(r"the batch may have been sent", f"该批次{MAYBE_SENT}"),
    _rule(r"no balance", "未取得余额"),
    _rule(r"an HTML page", "HTML 网页"),
    _rule(r"body (?P<body>.*)", "内容 {body}"),
    _rule(
        r"HTTP (?P<status>\d+) from the gateway \((?P<kind>.*)\); (?P<what>.*)",
        "网关返回 HTTP {status}（{kind}）；{what}",
        "kind",
        "what",
    ),
    _rule(r"empty answer from the gateway; (?P<what>.*)", "网关的应答为空；{what}", "what"),
    _rule(
        r"the gateway answered with an HTML page, not the protocol; (?P<what>.*)",
        "网关返回了 HTML 网页，不是协议应答；{what}",
        "what",
    ),
    _rule(
        r"unexpected first line (?P<line>.*); (?P<what>.*)", "应答首行异常 {line}；{what}", "what"
    ),
    _rule(
        r"code (?P<code>\S+) followed by unexpected lines; (?P<what>.*)",
        "代码 {code} 之后有多余的行；{what}",
        "what",
    ),
    _rule(
        r"unexpected extra lines after the msgid; (?P<what>.*)",
        "msgid 之后有多余的行；{what}",
        "what",
    ),
    _rule(
        r"code 0 with a malformed msgid (?P<msgid>.*); (?P<what>.*)",
        "代码 0，但 msgid 格式有误 {msgid}；{what}",
        "what",
    ),
    _rule(
        r"code 0 without a msgid although reports were requested; (?P<what>.*)",
        "代码 0，要求了状态报告却没有 msgid；{what}",
        "what",
    ),
    _rule(
        r"malformed product line (?P<line>.*); (?P<what>.*)",
        "产品行格式有误 {line}；{what}",
        "what",
    ),
)


@lru_cache(maxsize=4096)
def reason_zh(text: str) -> str:
    """The Chinese of a reason the tool made (figures, names and codes kept); else `text`."""
    text = text.strip()
    if not text or not re.search(r"[A-Za-z]", text):
        return text
    for rule in RULES:
        match = rule.pattern.fullmatch(text)
        if match is None:
            continue
        groups = {key: value or "" for key, value in match.groupdict().items()}
        for key in rule.nested:
            groups[key] = reason_zh(groups[key])
        return rule.zh(groups) if callable(rule.zh) else rule.zh.format(**groups)
    return text
