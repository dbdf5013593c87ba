"""Default Chinese SMS texts, keyed by event. A county overrides any of them in ``[sms.templates]``."""

from __future__ import annotations

from collections.abc import Mapping

FIELDS = frozenset(
    {"sign", "matter", "receipt", "due", "outcome", "place", "items", "reason", "days", "department", "level"}
)

DEFAULTS: Mapping[str, str] = {
    "accepted": "【{sign}】您申请的{matter}(回执号{receipt})已受理，承诺{due}前办结。",
    "supplement": "【{sign}】您申请的{matter}(回执号{receipt})需补正材料：{items}。请一次性补齐后交{place}。",
    "extended": "【{sign}】您申请的{matter}(回执号{receipt})办理期限延长至{due}，原因：{reason}。",
    "result": "【{sign}】您申请的{matter}(回执号{receipt})已办结：{outcome}。请到{place}领取结果。",
    "warning_yellow": "【电子监察】{department}：办件{receipt}({matter})将于{due}到期，请督促按时办结。",
    "warning_red": "【电子监察】{department}：办件{receipt}({matter})已超期{days}个工作日(期限{due})，请立即办理。",
    "urging": "【电子监察】{department}：办件{receipt}({matter})被督办：{reason}。请于{due}前答复。",
}


# What the outbox screen calls each event and each recipient (a message stores the code; a person reads these).
EVENT_LABELS: Mapping[str, tuple[str, str]] = {
    "accepted": ("受理通知", "accepted"),
    "supplement": ("补正通知", "supplement"),
    "extended": ("延期通知", "extended"),
    "result": ("办结通知", "result"),
    "warning_yellow": ("黄色预警", "yellow warning"),
    "warning_red": ("红色预警", "red warning"),
    "urging": ("督办提醒", "urging"),
}
RECIPIENT_LABELS: Mapping[str, tuple[str, str]] = {
    "applicant": ("申请人", "applicant"),
    "leader": ("部门负责人", "department leader"),
    "director": ("中心主任", "centre director"),
    "window": ("窗口值班电话", "window's duty phone"),
}


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, values: Mapping[str, object]) -> str:
    return template.format_map(_Fields({k: str(v) for k, v in values.items()}))
