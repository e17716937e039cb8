"""The README and the pages under docs/ point only at things that exist.

For README.md and every docs/*.md: every relative link and image resolves to a file or folder,
every `#anchor` names a heading of its target page (GitHub's slugs), every backticked repository
path exists (or is an output the pipeline writes), every page is linked from the README, and
the README stays a front door of at most 200 lines. Pure file reads: no dvc, no MLflow.
"""

import re
from functools import cache
from pathlib import Path

import pytest

from lstm_vs_rnn.params import parse_yaml
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 200

# Backticked tokens starting with one of these name a path of the repository.
PATH_PREFIXES = (
    "src/",
    "stages/",
    "tests/",
    "reports/",
    "docs/",
    "data/",
    "benchmarks/",
    "tools/",
    ".dvc/",
    ".ci/",
)
# A token with one of these is a pattern or a placeholder (`reports/...`), not one path.
PATTERN_CHARS = ("<", "{", "*", "$", "...", "…")

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def page_id(page: Path) -> str:
    return page.relative_to(REPO_ROOT).as_posix()


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (a fenced line becomes empty)."""
    lines = []
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def without_code(line: str) -> str:
    return INLINE_CODE.sub("", line)


def links(page: Path) -> list[str]:
    """Every link and image target of the page, outside code."""
    return [
        match.group(1) for line in prose_lines(page) for match in LINK.finditer(without_code(line))
    ]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown, lower-cased, punctuation
    removed (letters, digits, `_`, `-` and spaces stay), spaces become `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    for line in prose_lines(page):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return frozenset(found)


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def backticked_paths(page: Path) -> list[str]:
    """Every token of inline code that names a repository path (no patterns, no placeholders)."""
    paths = []
    for line in prose_lines(page):
        for match in INLINE_CODE.finditer(line):
            for token in match.group(2).split():
                token = token.strip("'\",;:()")
                if token.startswith(PATH_PREFIXES) and not any(c in token for c in PATTERN_CHARS):
                    paths.append(token)
    return paths


@cache
def pipeline_outputs() -> tuple[str, ...]:
    """The paths `dvc.yaml` declares as stage outputs, metrics and plots: written by the
    pipeline, so they exist after `dvc repro` (or `dvc pull`), not in a fresh clone."""
    dvc_yaml = parse_yaml((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    declared = []
    for stage in dvc_yaml["stages"].values():
        definition = stage.get("do", stage)
        for key in ("outs", "metrics", "plots"):
            for entry in definition.get(key, []):
                declared.extend(entry if isinstance(entry, dict) else [entry])
    return tuple(path.rstrip("/") for path in declared if "$" not in path)


@cache
def dvc_scratch() -> tuple[str, ...]:
    """The folders of `.dvc/` that DVC creates for itself (listed in `.dvc/.gitignore`)."""
    ignore = (REPO_ROOT / ".dvc" / ".gitignore").read_text(encoding="utf-8").splitlines()
    return tuple(f".dvc/{line.strip('/')}" for line in ignore if line.strip())


def exists_or_is_written(path: str) -> bool:
    cleaned = path.rstrip("/")
    if (REPO_ROOT / cleaned).exists():
        return True
    written = pipeline_outputs() + dvc_scratch()
    return any(cleaned == out or cleaned.startswith(out + "/") for out in written)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page: Path) -> None:
    missing = [
        f"{page_id(page)}: link target {target!r} does not exist"
        for target in links(page)
        if not is_external(target)
        and target.split("#", 1)[0]
        and not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_anchors_name_headings(page: Path) -> None:
    problems = []
    for target in links(page):
        if is_external(target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        target_page = (page.parent / path).resolve() if path else page
        if target_page.suffix != ".md" or not target_page.is_file():
            problems.append(f"{page_id(page)}: {target!r}: the anchor's page is no Markdown file")
        elif anchor not in anchors(target_page):
            problems.append(
                f"{page_id(page)}: {target!r}: no heading with anchor #{anchor} in "
                f"{page_id(target_page)}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_backticked_paths_exist(page: Path) -> None:
    missing = [
        f"{page_id(page)}: `{path}` is neither in the repository nor written by the pipeline"
        for path in backticked_paths(page)
        if not exists_or_is_written(path)
    ]
    assert not missing, "\n".join(missing)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.split("#", 1)[0]).resolve()
        for target in links(README)
        if not is_external(target)
    }
    unlinked = [
        f"README.md: no link to {page_id(page)}"
        for page in sorted(DOCS.glob("*.md"))
        if page.resolve() not in linked
    ]
    assert not unlinked, "\n".join(unlinked)


def test_readme_is_a_front_door() -> None:
    n_lines = len(README.read_text(encoding="utf-8").splitlines())
    assert n_lines <= README_MAX_LINES, (
        f"README.md: {n_lines} lines, more than {README_MAX_LINES}: move detail to docs/"
    )


def test_docs_pages_start_with_a_title_and_a_way_back() -> None:
    for page in sorted(DOCS.glob("*.md")):
        lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert lines and lines[0].startswith("# "), f"{page_id(page)}: no `# Title` first"
        assert "](../README.md)" in lines[1], f"{page_id(page)}: no link back to the README"


def test_the_checks_see_what_they_check() -> None:
    """The parsers find what the pages hold: a heading's slug, links, paths, and nothing in code."""
    assert github_slug("Parameters (`params.yaml`)") == "parameters-paramsyaml"
    assert github_slug("Which model learns longer lags? (the lagged series)") == (
        "which-model-learns-longer-lags-the-lagged-series"
    )
    assert github_slug("(e) Gradient flow") == "e-gradient-flow"
    assert "docs/results.md" in links(README)
    assert "src/lstm_vs_rnn/modeling/networks.py" in backticked_paths(DOCS / "pipeline.md")
    assert "the-pipeline" in anchors(DOCS / "pipeline.md")
    assert exists_or_is_written("data/raw/series.csv")
    assert exists_or_is_written("data/processed/fold_0/train.npy")
    assert not exists_or_is_written("src/lstm_vs_rnn/models.py")
