"""uvicorn's ``Config`` and ``Server`` without its command line (issue 16: a village idles under 80 MB).

``uvicorn``'s ``__init__`` imports ``uvicorn.main``: click and the reloader's supervisors with
multiprocessing (≈ 1.7 MB resident), none of which ``sanji <tier> serve`` runs. The package is put in
place holding ``Config`` and ``Server`` alone (``sanji.lean_import``); any other name still works.
"""

from __future__ import annotations

from sanji.lean_import import lean_package

lean_package("uvicorn", {"config": ("Config",), "server": ("Server",)})

from uvicorn.config import Config  # noqa: E402  (after the lean package is in place)
from uvicorn.server import Server  # noqa: E402

__all__ = ["Config", "Server"]
