"""Plan readers and writers: the real plans load, convert both ways and route; errors name file, line, field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.routing.cgr_router import CgrRouter
from dtn.routing.contacts import Contact, ContactPlan, PlanError, Range, dtn_ms_from_plan_time
from dtn.routing.plan_files import FORMATS, detect_format, format_plan, parse_plan
from dtn.routing.plan_hdtn import read_hdtn, unusable_contacts
from dtn.routing.plan_ion import read_ion

from .conftest import PLANS, load

REAL = sorted(p.name for p in PLANS.iterdir() if p.suffix in (".json", ".ionrc"))


def best_arrivals(plan: ContactPlan) -> dict[int, float]:
    source = plan.contacts[0].from_node
    router = CgrRouter(source, plan)
    out = {}
    for node in plan.nodes()[:12]:
        if node != source:
            infos = router.routes(node, 0, count=1)
            out[node] = infos[0].route.arrival_s if infos else -1
    return out


@pytest.mark.parametrize("name", REAL)
def test_real_plans_load_convert_and_route(name: str) -> None:
    plan = load(name)
    assert plan.contacts
    for fmt in FORMATS:
        again = parse_plan(format_plan(plan, fmt), fmt)
        if fmt == "hdtn" and name.endswith(".ionrc"):
            # HDTN carries OWLT per contact: ION's ranges become per-contact ranges and contacts without a range
            # cannot be written; what is left routes the same.
            unusable = set(unusable_contacts(plan))
            assert again.contacts == tuple(c for c in plan.contacts if c not in unusable)
            assert best_arrivals(again) == best_arrivals(plan)
        else:
            assert again == plan, fmt
    source = plan.contacts[0].from_node
    router = CgrRouter(source, plan)
    reachable = [n for n in plan.nodes() if n != source and router.routes(n, 0, count=1)]
    assert reachable


def test_mars_plan_node_9_to_node_1() -> None:
    plan = load("ion-cgr-test-mars.ionrc")
    assert len(plan.contacts) == 678 and len(plan.ranges) == 17
    assert any("m horizon" in note for note in plan.notes)
    router = CgrRouter(9, plan)
    infos = router.routes(1, 0, count=6, size_bytes=100)
    assert len(infos) == 6
    best = infos[0].route
    # Rover 9 -> orbiter 5 in the first pass (0-120 s, 20 s), 5 -> DSN 2 at 3600 s (324 s), 2 -> MCC 1 (1 s).
    assert best.nodes == (9, 5, 2, 1) and best.arrival_s == 3925 and best.from_s == 0
    assert infos[0].projected_arrival_s == 3925
    assert all(i.route.nodes[0] == 9 and i.route.nodes[-1] == 1 for i in infos)
    assert [i.route.arrival_s for i in infos] == sorted(i.route.arrival_s for i in infos)
    assert {i.route.entry_node for i in infos} == {5, 7}


def test_hdtn_units_and_unix_times() -> None:
    text = (
        '{"contacts": [{"contact": 0, "source": 1, "dest": 2, "startTime": 1700000000, "endTime": 1700000060,'
        ' "rateBitsPerSec": 8000, "owlt": 3}]}'
    )
    plan = read_hdtn(text)
    assert plan.contacts == (Contact(1, 2, 0, 60, 1000),)
    assert plan.ranges == (Range(1, 2, 0, 60, 3),)
    assert dtn_ms_from_plan_time(plan, 0) == (1_700_000_000 - 946_684_800) * 1000
    assert read_hdtn(format_plan(plan, "hdtn")) == plan
    relative = read_hdtn(text.replace("17000000", "").replace('"startTime": 00', '"startTime": 0'))
    assert relative.epoch_dtn_ms is None and relative.contacts[0].start_s == 0


def test_ion_times_rebase_and_deletes() -> None:
    plan = read_ion(
        "a contact +10 +20 1 2 100\n"
        "@ 2025/01/01-00:00:00\n"
        "a contact +0 +60 1 2 100 0.5\n"
        "@ +3600\n"
        "a contact +0 +60 2 1 100\n"
        "a contact 2025/01/01-02:00:00 2025/01/01-02:01:00 2 3 100\n"
        "a contact -1 +60 3 3 100\n"
        "a range +0 +60 1 2 4\n"
        "d contact 2025/01/01-00:00:10 1 2\n"
        "s\n",
        source="t.rc",
    )
    # The first absolute time is the epoch; relative times before it count from the same 0.
    assert [(c.from_node, c.to_node, c.start_s, c.end_s) for c in plan.contacts] == [
        (1, 2, 0, 60), (2, 1, 3600, 3660), (2, 3, 7200, 7260)
    ]
    assert plan.contacts[0].confidence == 0.5
    assert plan.ranges == (Range(1, 2, 3600, 3660, 4),)
    assert any("registration" in n for n in plan.notes) and any("t.rc:10" in n for n in plan.notes)
    assert read_ion(format_plan(plan, "ion")) == plan


@pytest.mark.parametrize(
    ("fmt", "text", "where"),
    [
        ("ion", "a range +0 +10 1 2 1\na contact +0 +10 1 2 -5\n", "p:2: rate"),
        ("ion", "a contact +0 tomorrow 1 2 5\n", "p:1: stop"),
        ("toml", "[[contact]]\nfrom = 1\nto = 2\nstart_s = 0\nend_s = 10\nrate_bytes_per_s = 1\n\n"
                 "[[contact]]\nfrom = 2\nto = 1\nstart_s = 0\nend_s = 10\nrate_bytes_per_s = 'fast'\n",
         "p:13: contact[1].rate_bytes_per_s"),
        ("json", '{"contacts": [\n {"from": 1, "to": 2, "start_s": 0, "end_s": 10, "rate_bytes_per_s": 1},\n'
                 ' {"from": 1, "to": 2,\n  "start_s": 9, "end_s": 3, "rate_bytes_per_s": 1}\n]}',
         "p:4: contact[1].end_s"),
        ("hdtn", '{"contacts": [{"contact": 0, "source": 1, "dest": 2, "startTime": 0,\n"endTime": 5,\n'
                 '"rateBitsPerSec": 8, "owlt": -1}]}', "p:3: contacts[0].owlt"),
        ("json", '{"contacts": [}', "p:1"),
    ],
)
def test_errors_name_file_line_field(fmt: str, text: str, where: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(text, fmt, source="p")
    assert str(info.value).startswith(where), str(info.value)


def test_detect_format() -> None:
    assert detect_format("a.toml") == "toml"
    assert detect_format("a.ionrc") == "ion" and detect_format("x.rc") == "ion"
    assert detect_format("a.json", '{"contacts": [{"source": 1') == "hdtn"
    assert detect_format("a.json", '{"contacts": [{"from": 1') == "json"


@st.composite
def any_plan(draw: st.DrawFn) -> ContactPlan:
    numbers = st.one_of(st.integers(0, 10**6), st.floats(0, 10**6, allow_nan=False).map(lambda x: round(x, 3)))
    contacts = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(numbers)
        contacts.append(
            Contact(draw(st.integers(1, 2**32 - 1)), draw(st.integers(1, 99)), start, start + draw(st.integers(1, 999)),
                    draw(st.integers(1, 10**9)), draw(st.sampled_from([1.0, 0.5, 0.25])))
        )
    ranges = []
    for c in contacts:
        ranges.append(Range(c.from_node, c.to_node, c.start_s, c.end_s, draw(st.integers(0, 2000))))
    epoch = draw(st.one_of(st.none(), st.integers(0, 2**32).map(lambda x: x * 1000)))
    return ContactPlan(tuple(contacts), tuple(ranges), epoch)


@settings(max_examples=100, deadline=None)
@given(any_plan(), st.sampled_from(FORMATS))
def test_conversions_round_trip(plan: ContactPlan, fmt: str) -> None:
    if fmt == "hdtn":
        # HDTN's times are whole seconds (UNIX times leave no room for fractions in a float).
        whole = tuple(Contact(c.from_node, c.to_node, int(c.start_s), int(c.start_s) + 1, c.rate_bytes_per_s,
                              c.confidence) for c in plan.contacts)
        ranges = tuple(Range(c.from_node, c.to_node, c.start_s, c.end_s, 1) for c in whole)
        plan = ContactPlan(whole, ranges, plan.epoch_dtn_ms)
    if fmt == "hdtn" and plan.epoch_dtn_ms is not None:
        # HDTN has UNIX times and no epoch of its own: the epoch is the earliest start, from 2001-09-09 on.
        anchor = (Contact(1, 2, 0, 1, 1),), (Range(1, 2, 0, 1, 0),)
        plan = ContactPlan(plan.contacts + anchor[0], plan.ranges + anchor[1], plan.epoch_dtn_ms + 53_315_200_000)
    assert parse_plan(format_plan(plan, fmt), fmt) == plan
