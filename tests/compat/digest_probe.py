"""Run under each release: print the digest of one bound errand's projection (tests/compat/test_digests.py)."""

from __future__ import annotations

from protocol.actions import Accept, Applicant, HandOff, Receive, Register
from protocol.errand import project
from sanji.catalogue import default_catalogue
from sanji.layout import county_layout


def main() -> None:
    directory = county_layout(1, 1, sealing=False).directory
    entry = default_catalogue().get("MZ-001")
    assert entry is not None
    common = {"errand": "T01V01-1", "scope": "T01V01", "actor": "代办员", "at": 1_000_000}
    actions = [
        Register(
            id="a0",
            node="T01V01",
            role="village_agent",
            matter="MZ-001",
            applicant=Applicant(name="张秀英"),
            materials=("申请书",),
            matter_entry=entry,
            catalogue_version=1,
            missing_confirmed=True,
            **common,  # type: ignore[arg-type]
        ),
        HandOff(id="a1", base=1, node="T01V01", role="village_agent", to="T01", purpose="submit", **common),  # type: ignore[arg-type]
        Receive(id="a2", base=2, node="T01", role="window_a", **common),  # type: ignore[arg-type]
        Accept(id="a3", base=3, node="T01", role="window_a", errand_kind="承诺件", due="1970-01-20", **common),  # type: ignore[arg-type]
    ]
    projection = project("T01V01-1", actions, directory)
    assert not projection.rejected, projection.rejected
    print(projection.digest)


if __name__ == "__main__":
    main()
