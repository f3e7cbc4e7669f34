"""A nameless plan (as the API receives it) is recognised from its content, comments and all."""

from pathlib import Path

import pytest

from dtn.routing.contacts import PlanError
from dtn.routing.plan_files import FORMATS, detect_format, format_plan, parse_plan

PLANS = Path(__file__).parent / "plans"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_writer_output_is_recognised_without_a_name(fmt: str) -> None:
    plan = parse_plan((PLANS / "ion-cgr-test-mars.ionrc").read_text(), source="mars.ionrc")
    assert detect_format("<api>", format_plan(plan, fmt)) == fmt


def test_comments_first_do_not_decide() -> None:
    assert detect_format("<api>", "# a plan\n\n[[contact]]\nfrom = 1\n") == "toml"
    assert detect_format("<api>", "# a plan\nepoch = 2025-01-01T00:00:00Z\n") == "toml"
    assert detect_format("<api>", "## ION\n# more\na contact +0 +10 1 2 100\n") == "ion"
    with pytest.raises(PlanError, match="cannot tell"):
        detect_format("<api>", "# only a comment\nhello\n")
