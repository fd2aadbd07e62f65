"""The README a newcomer reads in five minutes: under 150 lines, exactly two set-up commands (install and run the
main job; run the tests), and every page it links to exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_short_with_two_set_up_commands():
    assert len(README.splitlines()) < 150
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    assert [b.count("\n") for b in blocks] == [1, 1], blocks  # two one-line commands
    assert "pip install -e '.[dev]'" in blocks[0] and "edgekit export" in blocks[0]
    assert "python -m pytest -q" in blocks[1]


def test_every_linked_page_exists():
    linked = set(re.findall(r"`((?:docs|benchmarks|recipes)/[\w./-]+)`", README))
    assert linked and {p for p in linked if not (REPO / p).exists()} == set()
    assert {p.name for p in (REPO / "docs").glob("*.md")} <= {Path(p).name for p in linked}  # no page left unlinked
