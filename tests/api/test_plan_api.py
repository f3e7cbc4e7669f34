"""The contact plan through the application interface: a real node with a plan from its configuration, a plan
replaced over HTTP, ranked routes that follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtn.api.client import ApiError

from .conftest import serve, shut

#: Node 1 reaches node 4 through node 2 (relative times: the plan starts when the node loads it).
THROUGH_2 = """\
# node 1 reaches node 4 through node 2
a range +0 +100000 1 2 1
a range +0 +100000 2 4 1
a contact +100 +200 1 2 1000
a contact +150 +300 2 4 1000
"""

#: A TOML plan (it starts with a comment, and has no file name when posted): node 4 through node 3, earlier.
THROUGH_3 = """\
# node 1 reaches node 4 through node 3
[[contact]]
from = 1
to = 3
start_s = 10
end_s = 50
rate_bytes_per_s = 500

[[contact]]
from = 3
to = 4
start_s = 20
end_s = 60
rate_bytes_per_s = 500

[[range]]
from = 1
to = 3
start_s = 0
end_s = 100000
owlt_s = 2

[[range]]
from = 3
to = 4
start_s = 0
end_s = 100000
owlt_s = 3
"""


async def test_plan_from_the_configuration_and_replaced_over_http(tmp_path: Path) -> None:
    plan_file = tmp_path / "through-2.rc"
    plan_file.write_text(THROUGH_2, encoding="utf-8")
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "plan": "through-2.rc",
                                    "route": [{"destination": "ipn:9.*", "via": "ipn:2"}]})
    client = served.client
    try:
        summary = await client.plan()
        assert summary["loaded"] and summary["format"] == "ion" and summary["relative"]
        assert (summary["contacts"], summary["ranges"], summary["nodes"]) == (2, 2, [1, 2, 4])
        doc = await client.plan_routes("ipn:4.1", at="0", size_bytes=100)
        assert doc["to"] == "ipn:4.0" and doc["at_s"] == 0
        assert [(r["next_hop"], r["hops"], r["arrival_s"]) for r in doc["routes"]] == [("ipn:2.0", 2, 151)]
        route = doc["routes"][0]
        assert route["arrival_dtn_ms"] == doc["origin_dtn_ms"] + 151_000
        assert route["capacity_bytes"] == 100_000
        assert [(c["from"], c["to"]) for c in route["contacts"]] == [(1, 2), (2, 4)]
        table = await client.routes()
        assert [(r["destination"], r["via"], r["kind"]) for r in table] == [
            ("ipn:2.*", "ipn:2.0", "cgr"), ("ipn:4.*", "ipn:2.0", "cgr"), ("ipn:9.*", "ipn:2.0", "static")
        ]

        loaded = await client.load_plan(THROUGH_3)
        assert loaded["format"] == "toml" and loaded["nodes"] == [1, 3, 4] and loaded["source"] == "<api>"
        doc = await client.plan_routes("4", at="+0")
        assert [(r["next_hop"], r["nodes"]) for r in doc["routes"]] == [("ipn:3.0", ["ipn:1.0", "ipn:3.0",
                                                                                    "ipn:4.0"])]
        assert doc["routes"][0]["arrival_s"] == 23  # the 3->4 contact opens at 20, then 3 s of light time
        later = await client.plan_routes("ipn:4", at="55")
        assert later["routes"] == []  # the 1->3 contact is over
        assert (await client.plan())["scheduled_neighbours"] == []  # no neighbour with a URL in the config
    finally:
        await shut(served)


async def test_bad_plans_and_parameters_are_refused_and_change_nothing(tmp_path: Path) -> None:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"})
    client = served.client
    try:
        assert await client.plan() == {"loaded": False}
        assert (await client.plan_routes("ipn:4"))["routes"] == []
        with pytest.raises(ApiError) as bad:
            await client.load_plan("a range +0 +10 1 2 1\na contact +0 +10 1 2 fast\n", name="bad.rc")
        assert bad.value.status == 400 and "bad.rc:2: rate" in str(bad.value)
        with pytest.raises(ApiError) as unknown:
            await client.load_plan(THROUGH_3, "yaml")
        assert unknown.value.status == 400 and "format" in str(unknown.value)
        assert await client.plan() == {"loaded": False}
        with pytest.raises(ApiError) as not_ipn:
            await client.plan_routes("dtn://far/")
        assert not_ipn.value.status == 400 and "ipn" in str(not_ipn.value)
        with pytest.raises(ApiError) as bad_time:
            await client.plan_routes("ipn:4", at="tomorrow")
        assert bad_time.value.status == 400 and "at" in str(bad_time.value)
        loaded = await client.load_plan(THROUGH_3, "toml", name="mine.toml")
        assert loaded["source"] == "mine.toml" and loaded["contacts"] == 2
    finally:
        await shut(served)
