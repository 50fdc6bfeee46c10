"""docs/architecture.md names only paths that exist and links nothing outside the repo."""

from __future__ import annotations

import re

from tests.helpers import ROOT

DOC = ROOT / "docs" / "architecture.md"
# Backticked tokens that look like a file or folder of the repository.
PATH = re.compile(r"`([A-Za-z_][\w./-]*(?:/|\.py|\.md|\.toml|\.yml|Procfile))`")


def test_every_path_named_exists():
    named = set(PATH.findall(DOC.read_text()))
    assert len(named) >= 40  # the map names the files of each flow
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []


def test_one_page_and_no_links_outside_the_repo():
    text = DOC.read_text()
    assert len(text.splitlines()) <= 150
    assert "://" not in text
    assert not re.search(r"\]\((?!\.{0,2}/?[\w./-]+\))", text)  # markdown links stay relative
