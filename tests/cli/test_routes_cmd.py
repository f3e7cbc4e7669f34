"""``dtn routes`` over plan files and against a running dtnd, as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.system.procs import dtnd, free_port

PLANS = Path(__file__).resolve().parent.parent / "routing" / "plans"


def dtn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtn", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_worked_example_json() -> None:
    result = dtn("routes", "ipn:4.1", "--plan", str(PLANS / "worked-example.ionrc"), "--from", "ipn:1",
                 "--size", "1000", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    routes = doc["routes"]
    assert [(r["next_hop"], r["arrival_s"], r["projected_arrival_s"]) for r in routes] == [
        ("ipn:2.0", 52, 53), ("ipn:3.0", 75, 75)
    ]
    assert routes[0]["capacity_bytes"] == 100_000 and routes[1]["capacity_bytes"] == 25_000
    assert [c["to"] for c in routes[0]["contacts"]] == [2, 4]


def test_mars_text_and_at_time() -> None:
    plan = str(PLANS / "ion-cgr-test-mars.ionrc")
    result = dtn("routes", "1", "--plan", plan, "--from", "ipn:9", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert "1. via ipn:5.0  3 hops  arrival 3925 s" in result.stdout
    assert "9 -> 5  [0, 120) s" in result.stdout
    later = dtn("routes", "1", "--plan", plan, "--from", "ipn:9", "--at", "120", "--count", "1")
    assert later.returncode == 0 and "valid 1200-1320 s" in later.stdout  # the first pass has closed


def test_no_route_and_errors() -> None:
    plan = str(PLANS / "worked-example.ionrc")
    result = dtn("routes", "ipn:1", "--plan", plan, "--from", "ipn:4")
    assert result.returncode == 3 and "no route" in result.stdout
    result = dtn("routes", "ipn:4", "--plan", plan, "--from", "ipn:1", "--at", "2025-01-01T00:00:20Z", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["at_s"] == 20
    result = dtn("routes", "ipn:4", "--from", "ipn:1")
    assert result.returncode == 2 and "--plan" in result.stderr
    result = dtn("routes", "--plan", plan, "--from", "ipn:1")
    assert result.returncode == 2 and "DEST" in result.stderr
    result = dtn("routes", "dtn://x/", "--plan", plan, "--from", "ipn:1")
    assert result.returncode == 1 and "ipn" in result.stderr


def test_routes_from_the_running_node(tmp_path: Path) -> None:
    node = dtnd(tmp_path, "n1", "ipn:1", neighbours=[f"ipn:2=tcpcl://127.0.0.1:{free_port()}"],
                routes=["ipn:9.*=ipn:2"], extra=["--plan", str(PLANS / "worked-example.ionrc")]).start()
    try:
        result = dtn("routes", "ipn:4.1", "--api", node.api, "--size", "1000", "--json",
                     "--at", "2025-01-01T00:00:00Z")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["from"] == "ipn:1.0" and doc["at_s"] == 0
        assert [(r["next_hop"], r["arrival_s"], r["projected_arrival_s"]) for r in doc["routes"]] == [
            ("ipn:2.0", 52, 53), ("ipn:3.0", 75, 75)
        ]
        text = dtn("routes", "4", "--api", node.api, "--at", "0", "--count", "1")
        assert text.returncode == 0, text.stderr
        assert "1. via ipn:2.0  2 hops  arrival 52 s (2025-01-01T00:00:52Z)" in text.stdout
        assert "1 -> 2  [0, 100) s" in text.stdout
        # The plan's contacts are long over now: no route, exit 1 (3 is for a node that does not answer).
        now = dtn("routes", "ipn:4", "--api", node.api)
        assert now.returncode == 1 and "no route from ipn:1.0 to ipn:4.0" in now.stdout
        table = json.loads(dtn("routes", "--json", "--api", node.api).stdout)
        assert table == [{"destination": "ipn:9.*", "via": "ipn:2.0", "kind": "static"}]
        bad = dtn("routes", "dtn://x/", "--api", node.api)
        assert bad.returncode == 1 and "ipn" in bad.stderr
    finally:
        assert node.terminate() == 0, node.log()
    gone = dtn("routes", "ipn:4", "--api", node.api)
    assert gone.returncode == 3 and "not running" in gone.stderr
