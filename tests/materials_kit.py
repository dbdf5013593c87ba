"""What a test's agent brings to register an errand the township may accept: every main material (主件) the
illustrative catalogue names for the matter (``protocol.binding.acceptance_refusal`` refuses acceptance while one
is missing)."""

from __future__ import annotations

from sanji.catalogue import default_catalogue


def mains(matter: str) -> list[str]:
    """The matter's main materials in the illustrative catalogue; none for a code it lacks (an unbound errand)."""
    entry = default_catalogue().get(matter)
    return list(entry.main_materials) if entry is not None else []
