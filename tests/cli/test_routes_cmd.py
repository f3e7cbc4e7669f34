"""``dtn routes`` over plan files as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    result = dtn("routes", "ipn:4", "--api", "http://127.0.0.1:4243")
    assert result.returncode == 2 and "--plan" in result.stderr
    result = dtn("routes", "dtn://x/", "--plan", plan, "--from", "ipn:1")
    assert result.returncode == 1 and "ipn" in result.stderr
