"""``dtn plan show|convert|load`` as real subprocesses (``load`` against a running dtnd)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dtn.routing.plan_files import parse_plan
from tests.system.procs import dtnd

PLANS = Path(__file__).resolve().parent.parent / "routing" / "plans"


def dtn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtn", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_show_ion_plan() -> None:
    result = dtn("plan", "show", str(PLANS / "ion-cgr-test-mars.ionrc"), "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert "contacts: 678, ranges: 17" in result.stdout
    assert "nodes: 9 (1, 2, 3, 4, 5, 6, 7, 8, 9)" in result.stdout
    assert "note:" in result.stdout and "m horizon" in result.stdout
    assert "... 675 more" in result.stdout


def test_convert_round_trip_through_files(tmp_path: Path) -> None:
    source = PLANS / "hdtn-cgrTutorial.json"
    original = parse_plan(source.read_text(), source=str(source))
    current = source
    for name in ("plan.toml", "plan.json", "plan.rc", "back.json"):
        out = tmp_path / name
        args = ["plan", "convert", str(current), str(out)] + (["--to", "hdtn"] if name == "back.json" else [])
        result = dtn(*args)
        assert result.returncode == 0, result.stderr
        assert "wrote" in result.stderr
        current = out
    assert parse_plan((tmp_path / "back.json").read_text(), "hdtn") == original
    assert parse_plan((tmp_path / "plan.toml").read_text(), "toml") == original


def test_convert_to_stdout_needs_a_format_and_bad_plans_name_the_line(tmp_path: Path) -> None:
    result = dtn("plan", "convert", str(PLANS / "worked-example.ionrc"), "-")
    assert result.returncode == 1 and "--to" in result.stderr
    result = dtn("plan", "convert", str(PLANS / "worked-example.ionrc"), "-", "--to", "json")
    assert result.returncode == 0 and '"rate_bytes_per_s": 2000' in result.stdout
    bad = tmp_path / "bad.rc"
    bad.write_text("a range +0 +10 1 2 1\na contact +0 +10 1 2 fast\n")
    result = dtn("plan", "show", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: rate: not a number: 'fast'" in result.stderr
    result = dtn("plan", "show", str(tmp_path / "missing.toml"))
    assert result.returncode == 1 and "cannot read the plan" in result.stderr


def test_load_replaces_the_plan_of_the_running_node(tmp_path: Path) -> None:
    node = dtnd(tmp_path, "n1", "ipn:1").start()
    try:
        assert json.loads(dtn("routes", "ipn:4", "--api", node.api, "--json").stdout)["routes"] == []
        loaded = dtn("plan", "load", str(PLANS / "worked-example.ionrc"), "--api", node.api)
        assert loaded.returncode == 0, loaded.stderr
        assert "loaded" in loaded.stdout and "(ion): 4 contacts, 4 ranges, nodes 1, 2, 3, 4" in loaded.stdout
        assert "time 0 is 2025-01-01T00:00:00Z" in loaded.stdout
        routes = json.loads(dtn("routes", "ipn:4", "--api", node.api, "--at", "0", "--json").stdout)["routes"]
        assert [r["next_hop"] for r in routes] == ["ipn:2.0", "ipn:3.0"]
        # A relative plan in our TOML format: node 4 through node 3 only, starting now.
        relative = tmp_path / "later.toml"
        relative.write_text("[[contact]]\nfrom = 1\nto = 3\nstart_s = 60\nend_s = 120\nrate_bytes_per_s = 100\n"
                            "[[contact]]\nfrom = 3\nto = 4\nstart_s = 60\nend_s = 120\nrate_bytes_per_s = 100\n"
                            "[[range]]\nfrom = 1\nto = 3\nstart_s = 0\nend_s = 200\nowlt_s = 1\n"
                            "[[range]]\nfrom = 3\nto = 4\nstart_s = 0\nend_s = 200\nowlt_s = 1\n")
        loaded = dtn("plan", "load", str(relative), "--api", node.api, "--json")
        assert loaded.returncode == 0 and json.loads(loaded.stdout)["relative"] is True
        routes = json.loads(dtn("routes", "ipn:4", "--api", node.api, "--json").stdout)["routes"]
        assert [(r["next_hop"], r["arrival_s"]) for r in routes] == [("ipn:3.0", 62)]
        bad = tmp_path / "bad.rc"
        bad.write_text("a range +0 +10 1 2 1\na contact +0 +10 1 2 fast\n")
        refused = dtn("plan", "load", str(bad), "--api", node.api)
        assert refused.returncode == 1 and f"{bad}:2: rate: not a number" in refused.stderr
        missing = dtn("plan", "load", str(tmp_path / "nope.rc"), "--api", node.api)
        assert missing.returncode == 1 and "cannot read the plan" in missing.stderr
        still = json.loads(dtn("routes", "ipn:4", "--api", node.api, "--json").stdout)["routes"]
        assert [r["next_hop"] for r in still] == ["ipn:3.0"]  # a refused plan changes nothing
    finally:
        assert node.terminate() == 0, node.log()


def test_the_commented_example_plan_reads_and_routes() -> None:
    example = str(Path(__file__).resolve().parents[2] / "examples" / "plans" / "line.rc")
    shown = dtn("plan", "show", example)
    assert shown.returncode == 0, shown.stderr
    assert "contacts: 8, ranges: 2" in shown.stdout and "relative times" in shown.stdout
    routes = json.loads(dtn("routes", "ipn:3", "--plan", example, "--from", "ipn:1", "--count", "2",
                             "--json").stdout)["routes"]
    assert [(r["next_hop"], r["arrival_s"]) for r in routes] == [("ipn:2.0", 901), ("ipn:2.0", 4501)]
