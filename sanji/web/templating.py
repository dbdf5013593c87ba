"""The pages' template engine: Litestar's Jinja engine, made when the first page is rendered (issue 16).

A node that serves only sync and the API while nobody opens a page (a village between visits) never
loads Jinja (≈ 2 MB resident). The first page rendered makes the real engine and hands it to the setups
(``sanji.web.timefmt.register``, ``sanji.web.language.register``: filters and globals) before rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from litestar.template import TemplateEngineProtocol
from litestar.template.base import TemplateCallableType

if TYPE_CHECKING:
    from jinja2 import Template
    from litestar.plugins.jinja import JinjaTemplateEngine

P = ParamSpec("P")
R = TypeVar("R")
Setup = Callable[["JinjaTemplateEngine"], None]


class LazyJinja(TemplateEngineProtocol["Template", Mapping[str, Any]]):
    def __init__(self, directory: Path | list[Path] | None, engine_instance: Any | None = None) -> None:
        if directory is None or engine_instance is not None:
            raise ValueError("LazyJinja makes its own environment from a template directory")
        self.directory = directory
        self.setups: list[Setup] = []  # run on the real engine once it is made
        self._callables: dict[str, Callable[..., Any]] = {}  # registered before it is made (Litestar's own)
        self._real: JinjaTemplateEngine | None = None

    @property
    def made(self) -> bool:
        return self._real is not None

    def engine(self) -> JinjaTemplateEngine:
        if self._real is None:
            from litestar.plugins.jinja import JinjaTemplateEngine

            real = JinjaTemplateEngine(directory=self.directory)
            for key, template_callable in self._callables.items():
                real.register_template_callable(key, template_callable)
            for setup in self.setups:
                setup(real)
            self._real = real
        return self._real

    def get_template(self, template_name: str) -> Template:
        return self.engine().get_template(template_name)

    def render_string(self, template_string: str, context: Mapping[str, Any]) -> str:
        return self.engine().render_string(template_string, context)

    def register_template_callable(
        self, key: str, template_callable: TemplateCallableType[Mapping[str, Any], P, R]
    ) -> None:
        if self._real is not None:
            self._real.register_template_callable(key, template_callable)
        else:
            self._callables[key] = template_callable


def setting_up(*setups: Setup) -> Callable[[LazyJinja], None]:
    """Litestar's ``engine_callback`` for a ``LazyJinja``: ``setups`` run when the real engine is made."""

    def callback(engine: LazyJinja) -> None:
        engine.setups.extend(setups)

    return callback
