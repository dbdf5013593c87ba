"""The demo's synthetic but realistic applicants and matters (``sanji demo`` plays staff with them; tests
and benchmarks borrow them).

ID numbers follow GB 11643-1999 (region, birth date, sequence, ISO 7064 MOD 11-2
check character); phone numbers use mainland mobile prefixes. Nobody here is real.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from protocol.idnumber import id_check_char, valid_id_number

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华玉兰桂芳红梅志强海"
    "燕春梅德明福贵长生金凤淑珍凤英秀珍玉珍志明国强卫东"
)
REGIONS = ["430621", "430623", "430624", "430626", "431121", "431122", "511921", "511922", "522422", "532524"]
MOBILE_PREFIXES = "133 135 136 137 138 139 150 151 152 158 159 177 180 187 189 199".split()


@dataclass(frozen=True)
class Matter:
    code: str
    name: str
    department: str  # "" when the township decides it
    immediate: bool = False


# Illustrative only: the seeds name these matters but give no codes or day counts.
MATTERS = [
    Matter("MZ-001", "最低生活保障(低保)申请", "县民政局"),
    Matter("MZ-002", "特困人员(五保)供养申请", "县民政局"),
    Matter("MZ-003", "临时救助申请", ""),
    Matter("CL-001", "残疾人证办理", "县残联"),
    Matter("WJ-001", "生育服务证办理", "", immediate=True),
    Matter("RS-001", "城乡居民养老保险参保登记", "", immediate=True),
    Matter("RS-002", "养老保险补缴", "县人社局"),
    Matter("YB-001", "农村合作医疗报销", "县医保局"),
    Matter("GA-001", "户口迁移", "县公安局"),
    Matter("ZR-001", "农村村民建房审批", "县自然资源局"),
    Matter("SJ-001", "个体工商户登记", "县市场监管局"),
    Matter("NY-001", "惠农补贴申领", ""),
]


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str
    phone: str


def person(rng: random.Random) -> Person:
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65))
    first17 = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}"
    return Person(name=name, id_number=first17 + id_check_char(first17), phone=phone)


def matter(rng: random.Random) -> Matter:
    return rng.choice(MATTERS)


def matter_by_code(code: str) -> Matter | None:
    return next((m for m in MATTERS if m.code == code), None)


__all__ = ["MATTERS", "Matter", "Person", "id_check_char", "matter", "matter_by_code", "person", "valid_id_number"]
