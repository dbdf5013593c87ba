"""代办件 is derived from the registration: a village station, the villager absent, on the mandate."""

from __future__ import annotations

from protocol_kit import ERRAND, TOWN_ID, VILLAGE_ID, make

from protocol.actions import Register
from protocol.errand import PROXIED, judge, project, proxied, service_kind
from protocol.refusals import refuse
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory
from sanji.catalogue import default_catalogue


def test_only_a_village_registration_on_the_mandate_is_proxied() -> None:
    assert service_kind(VILLAGE, in_person=False, mandate=True) == PROXIED
    assert service_kind(VILLAGE, in_person=True, mandate=True) == ""
    assert service_kind(VILLAGE, in_person=False, mandate=False) == ""  # no mandate, no 代办 (judge refuses it bound)
    assert service_kind(TOWN, in_person=False, mandate=True) == ""  # the township window is not an agent
    assert service_kind(COUNTY, in_person=False, mandate=True) == ""


def test_the_projected_errand_says_whether_it_is_proxied(directory: Directory) -> None:
    cases = {
        (VILLAGE_ID, False): True,
        (VILLAGE_ID, True): False,
        (TOWN_ID, False): False,
    }
    for (scope, in_person), expected in cases.items():
        action = make(Register, node=scope, id="r0", scope=scope, in_person=in_person)
        state = project(ERRAND, [action], directory).state
        assert state is not None and proxied(state, directory) is expected, (scope, in_person)


def test_a_proxied_registration_without_the_mandate_is_refused_when_bound(directory: Directory) -> None:
    entry = default_catalogue().get("MZ-003")
    assert entry is not None and entry.proxy_allowed
    fields = {"matter": entry.code, "matter_entry": entry, "materials": entry.main_materials}
    unsigned = make(Register, node=VILLAGE_ID, id="r0", mandate=False, **fields)
    assert judge(None, unsigned, directory) == refuse("mandate_missing")
    signed = make(Register, node=VILLAGE_ID, id="r0", mandate=True, **fields)
    assert judge(None, signed, directory) is None
