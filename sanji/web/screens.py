"""Screens for the person at the desk: Chinese first, English second."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Template

from protocol.errand import STAGE_LABELS
from sanji.store import Store

ROLE_LABELS = {
    "county": "县级政务服务中心 County hub",
    "town": "乡镇便民服务中心 Township centre",
    "village": "村代办点 Village station",
}


class ScreenController(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def home(self, store: NamedDependency[Store]) -> Template:
        status = await store.status()
        rows, total = await store.errands(limit=200)
        work = await store.worklist()
        entry = store.directory.get(store.node_id)
        return Template(
            template_name="home.html",
            context={
                "node": status,
                "name": entry.name,
                "role_label": ROLE_LABELS[status["role"]],
                "errands": rows,
                "total": total,
                "worklist": work,
                "labels": STAGE_LABELS,
            },
        )
