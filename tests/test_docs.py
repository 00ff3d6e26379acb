"""The README and docs/ link to each other: every relative link must reach a file, and every #anchor a
heading of that file (GitHub's slugs), so moving a section cannot silently break the way to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mstvsc_stream.runtime import INT8_PSNR_COST_DB

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' removed, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    in_code, found = False, set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def test_slug_matches_github() -> None:
    assert slug(" Sealed streams (`--key-file`, off by default)") == "sealed-streams---key-file-off-by-default"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (document.parent / file_part).resolve() if file_part else document
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert broken == []


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    for document in DOCUMENTS[1:]:
        assert f"docs/{document.name}" in readme, f"{document.name} is not reachable from the README"


def test_the_docs_state_the_int8_cost_the_code_logs() -> None:
    assert f"at most {INT8_PSNR_COST_DB} dB" in (ROOT / "docs" / "models.md").read_text()
