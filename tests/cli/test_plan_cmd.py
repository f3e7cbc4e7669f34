"""``dtn plan show|convert`` as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dtn.routing.plan_files import parse_plan

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
