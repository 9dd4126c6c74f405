"""Every relative link in README.md and docs/*.md names a file that exists, and an anchor
that one of its headings makes (GitHub's rule), so a renamed heading or file is caught."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def anchors(markdown: str) -> set[str]:
    """The ids GitHub gives the headings: lowercased, punctuation dropped (but `-` and `_`),
    spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", markdown), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def test_anchors_follow_githubs_rule() -> None:
    assert anchors("## `RESOURCE_*`: replicas\n### `GET /healthz`\n### `GET /healthz`\n") == {
        "resource_-replicas",
        "get-healthz",
        "get-healthz-1",
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file.read_text())):
            broken.append(target)
    assert broken == [], f"{doc.name}: broken links"


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    """The README's second command (the first runs the demo) is what CI runs, so a reader
    who copies it installs what the tests need."""
    demo, tests = re.findall(r"^```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL | re.MULTILINE)[:2]
    assert "pip install -e '.[server]'" in demo
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == tests
