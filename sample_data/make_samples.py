"""Generate the sample contact lists (deterministic: fixed seed, fixed workbook date).

    .venv/bin/python sample_data/make_samples.py [OUT_DIR]

contacts.xlsx: ~300 rows of a realistic, messy member list as marketing exports it from
Excel/WPS: a merged title row "2026年双十一会员营销名单" above the header 姓名, 手机号码,
城市, 会员等级, 积分; mobiles written every which way (spaces, +86, 0086, full-width digits,
NBSP, dashes, real numeric cells), some lost to Excel ("1.39002E+10"), too short, with
letters, or empty; some empty names and cities; repeated numbers; a few blank rows.
contacts.csv: ~100 rows in GBK (what Chinese Excel writes), the same headers, some numbers
that are also in the workbook, some empty 姓名.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
from pathlib import Path

import xlsxwriter

SEED = 2026
TITLE = "2026年双十一会员营销名单"
HEADERS = ["姓名", "手机号码", "城市", "会员等级", "积分"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉晶佳琳欣怡浩宇子涵梓萱思远"
)
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "西安", "重庆"]
LEVELS = ["普通会员", "银卡会员", "金卡会员", "钻石会员"]
# fmt: off
PREFIXES = [str(prefix) for prefix in (
    134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159, 172, 178, 182,
    183, 184, 187, 188, 195, 198, 130, 131, 132, 145, 155, 156, 166, 175, 176, 185,
    186, 196, 133, 149, 153, 173, 177, 180, 181, 189, 190, 191, 193, 199, 192,
)]
# fmt: on
WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


def mobile(rng: random.Random) -> str:
    return rng.choice(PREFIXES) + f"{rng.randrange(10**8):08d}"


def name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def messy(rng: random.Random, number: str) -> str | int:
    """One way marketing people write (or Excel mangles) a mobile; int = a numeric cell."""
    kind = rng.choices(
        ["clean", "number", "spaces", "+86", "0086", "wide", "nbsp", "dashes", "e+10",
         "short", "letters", "empty"],
        weights=[66, 8, 4, 3, 2, 2, 2, 3, 2, 2, 1, 2],
    )[0]  # fmt: skip
    a, b, c = number[:3], number[3:7], number[7:]
    return {
        "clean": number,
        "number": int(number),
        "spaces": f"{a} {b} {c}",
        "+86": rng.choice([f"+86 {number}", f"+86-{a}-{b}-{c}", f"+86{number}"]),
        "0086": f"0086{number}",
        "wide": number.translate(WIDE),
        "nbsp": rng.choice([f"{number}\u00a0", f"{a}\u00a0{b}\u00a0{c}", f"\u3000{number}"]),
        "dashes": rng.choice([f"{a}-{b}-{c}", f"({a}){b}-{c}"]),
        "e+10": f"{int(number):.5E}",  # what Excel leaves of a number in a narrow column
        "short": number[:-1],
        "letters": number[:5] + "abc" + number[8:],
        "empty": "",
    }[kind]


def contact_rows(rng: random.Random, count: int, earlier: list[str]) -> list[list[str | int]]:
    """Rows of (name, mobile cell, city, level, points); some repeat an earlier number."""
    rows: list[list[str | int]] = []
    seen: list[str] = []
    for _ in range(count):
        pool = seen + earlier
        repeat = pool and rng.random() < 0.06
        number = rng.choice(pool) if repeat else mobile(rng)
        seen.append(number)
        person = "" if rng.random() < 0.05 else name(rng)
        city = "" if rng.random() < 0.01 else rng.choice(CITIES)
        level = rng.choices(LEVELS, weights=[50, 25, 18, 7])[0]
        rows.append([person, messy(rng, number), city, level, rng.randrange(0, 20000, 10)])
    return rows


def write_xlsx(path: Path, rows: list[list[str | int]], rng: random.Random) -> None:
    workbook = xlsxwriter.Workbook(str(path))
    workbook.set_properties({"created": dt.datetime(2026, 11, 1, 9, 0, 0), "author": "marketing"})
    sheet = workbook.add_worksheet("Sheet1")
    title = workbook.add_format({"bold": True, "font_size": 14, "align": "center"})
    bold = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
    sheet.merge_range(0, 0, 0, len(HEADERS) - 1, TITLE, title)
    sheet.write_row(1, 0, HEADERS, bold)
    sheet.set_column(0, 0, 10)
    sheet.set_column(1, 1, 16)
    sheet.set_column(2, 4, 10)
    blank_after = set(rng.sample(range(10, len(rows) - 10), 4))
    line = 2
    for index, row in enumerate(rows):
        for col, value in enumerate(row):
            if isinstance(value, int):
                sheet.write_number(line, col, value)
            elif value != "":
                sheet.write_string(line, col, value)
        line += 2 if index in blank_after else 1  # a blank row now and then
    workbook.close()


def write_csv(path: Path, rows: list[list[str | int]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows([str(cell) for cell in row] for row in rows)
    path.write_bytes(buffer.getvalue().encode("gbk"))


def main(out: Path) -> None:
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    xlsx_rows = contact_rows(rng, 296, [])
    write_xlsx(out / "contacts.xlsx", xlsx_rows, rng)
    earlier = [str(row[1]) for row in xlsx_rows if str(row[1]).isdigit()]
    csv_rows = contact_rows(rng, 100, earlier)
    for row in csv_rows:  # GBK has no NBSP: a plain space where one was drawn
        row[1] = str(row[1]).replace("\u00a0", " ")
    write_csv(out / "contacts.csv", csv_rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
