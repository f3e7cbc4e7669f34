from pathlib import Path

import pytest

from dtn.routing.contacts import ContactPlan
from dtn.routing.plan_files import parse_plan

PLANS = Path(__file__).parent / "plans"


def load(name: str) -> ContactPlan:
    path = PLANS / name
    return parse_plan(path.read_text(), source=str(path))


@pytest.fixture
def worked() -> ContactPlan:
    return load("worked-example.ionrc")
