"""``[sms]``: which gateway, its credentials, the Chinese templates keyed by event, and who is warned.

    [sms]
    gateway = "http"                      # "file" (the demo: sms.log) or "http"
    url = "https://sms.example.gov.cn/api/send"
    account = "county-sanji"
    secret_env = "SANJI_SMS_SECRET"       # the credential comes from this environment variable
    max_attempts = 6                      # then the message goes to the dead-letter list
    base_delay = 30.0                     # seconds before the first retry; doubles each time
    max_delay = 3600.0
    director = "13900000000"              # 中心主任: yellow and red warnings

    [sms.leaders]                         # the handling department's leader (电子监察 warnings)
    "县民政局" = "13900000001"

    [sms.windows]                         # a window's duty phone: 督办 urgings addressed to it
    "社会救助窗口" = "13900000002"

    [sms.templates]                       # override any default (sanji.notify.templates)
    result = "【{sign}】您申请的{matter}已办结：{outcome}，请到{place}领取。"

Phones of leaders and the director are configuration, not data that travels; an applicant's
phone is opened from the sealed errand only when a message is handed to the gateway.
"""

from __future__ import annotations

import string
from typing import Literal

import msgspec

from sanji.notify.templates import DEFAULTS, FIELDS


class SmsSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gateway: Literal["file", "http"] = "file"
    url: str = ""
    account: str = ""
    secret_env: str = ""
    sign: str = "三级联办"
    timeout: float = 10.0
    max_attempts: int = 6
    base_delay: float = 30.0
    max_delay: float = 3600.0
    director: str = ""
    leaders: dict[str, str] = msgspec.field(default_factory=dict)
    windows: dict[str, str] = msgspec.field(default_factory=dict)
    templates: dict[str, str] = msgspec.field(default_factory=dict)

    def template(self, event: str) -> str:
        return self.templates.get(event) or DEFAULTS[event]

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.gateway == "http" and not self.url.startswith(("http://", "https://")):
            out.append("sms.url must be an http:// or https:// address when sms.gateway = 'http'")
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            out.append("sms.max_attempts >= 1 and 0 <= sms.base_delay <= sms.max_delay")
        for event, text in self.templates.items():
            if event not in DEFAULTS:
                out.append(f"sms.templates.{event}: no such event (events: {', '.join(DEFAULTS)})")
                continue
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            except ValueError as exc:
                out.append(f"sms.templates.{event}: {exc}")
                continue
            unknown = names - FIELDS
            if unknown:
                out.append(f"sms.templates.{event}: unknown placeholder {', '.join(sorted(unknown))}")
        return out
