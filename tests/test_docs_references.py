"""Every reference in the code and the docs resolves inside the repository.

What counts as a reference, in the README, docs/, the package, the tests, the suite, the
benchmarks, the examples, the baselines, CI and the project's config files:

- a Markdown link in a ``.md`` file: its target, relative to that file, must exist inside the
  repository, and an anchor into a Markdown file must be one of its headings;
- a Markdown document named in any file: a path with a folder or an upper-case file name (the
  README, the docs pages), or a retired name of a document the project never held (RETIRED); an
  anchor after it must be a heading of that document;
- a path under one of the repository's top-level folders (FOLDERS), such as a module or a test
  file named in a docstring;
- a section cited by name after a document, as in ``(see the README, 'Two commands')``;
- no path of a particular machine, and nothing outside the repository (MACHINE_PATHS).

Anchors must be spelled the same by GitHub and by MkDocs, so that a link works in both.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("README.md", "docs", "pytest_npuperf", "tests", "perf_tests", "benchmarks", "examples", "baselines",
           ".ci", "conftest.py", "pyproject.toml", "tox.ini", "mkdocs.yml")
TEXT_SUFFIXES = {".md", ".py", ".sh", ".yml", ".yaml", ".toml", ".ini", ".txt", ".cfg", ""}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", "results"}  # benchmarks/results holds raw logs; its README is read
FOLDERS = ("pytest_npuperf", "tests", "perf_tests", "benchmarks", "examples", "baselines", "docs", ".ci")
MD = ".md"
# Names of documents the project's code once cited but never held; written in parts so that this
# file does not cite them itself.
RETIRED = ("DESIGN" + MD, "measurement" + MD, "torch_npu" + MD, "STYLE" + MD)
MACHINE_PATHS = re.compile(r"(?<![\w.])/" + "work/" + r"|\.\./" + "shared")

_CHARS = r"[\w.\-]"
DOC_MENTION = re.compile(r"(?<![\w./$<{\-])((?:" + _CHARS + r"+/)*" + _CHARS + r"+\.md)(#[\w\-]+)?(?![\w/])")
FOLDER_PATH = re.compile(r"(?<![\w./$<{\-])((?:" + "|".join(re.escape(f) for f in FOLDERS) + r")/[\w./\-]*)([*<{]?)")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
LINK_TARGET = re.compile(r"\]\([^)\s]*")
SECTION_CITE = re.compile(r"((?:" + _CHARS + r"+/)*" + _CHARS + r"+\.md|\bREADME)\s*,\s*(?:section\s+)?[\"']([^\"'\n]{3,80})[\"']")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def mkdocs_slug(text: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def heading_text(raw: str) -> str:
    """A heading's text as rendered: links to their text, code and emphasis marks dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return text.replace("`", "").replace("**", "")


def headings(path: Path) -> List[str]:
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            m = HEADING.match(line)
            if m:
                out.append(heading_text(m.group(2)))
    return out


def anchor_problem(root: Path, doc: Path, anchor: str) -> Optional[str]:
    """Why ``#anchor`` does not lead to a heading of ``doc`` in both GitHub and MkDocs, or None."""
    found = headings(doc)
    if any(mkdocs_slug(h) == anchor == github_slug(h) for h in found):
        return None
    if any(anchor in (mkdocs_slug(h), github_slug(h)) for h in found):
        return f"#{anchor} is spelled differently by GitHub and MkDocs: reword that heading of {doc.name}"
    return f"{doc.resolve().relative_to(root.resolve()).as_posix()} has no heading #{anchor}"


def scanned_files(root: Path) -> Iterator[Path]:
    for name in SCANNED:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if (file.is_file() and file.suffix in TEXT_SUFFIXES
                        and not SKIPPED_DIRS.intersection(file.relative_to(root).parts[:-1])):
                    yield file


def inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def resolve_mention(root: Path, source: Path, target: str) -> Optional[Path]:
    """A document named in prose: relative to the repository root, else to the naming file."""
    for base in (root, source.parent):
        candidate = base / target
        if candidate.exists() and inside(root, candidate):
            return candidate
    return None


def strip_code(text: str) -> str:
    """Markdown without fenced blocks and inline code (where a link is not a link)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def is_document_reference(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return "/" in name or base in RETIRED or re.fullmatch(r"[A-Z][A-Z0-9_\-]*\.md", base) is not None


def check_file(root: Path, path: Path) -> List[Tuple[int, str, str]]:
    """(line, reference, why) for every reference of ``path`` that does not resolve."""
    problems: List[Tuple[int, str, str]] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if path.suffix == MD:
            line = LINK_TARGET.sub("](", line)  # link targets are checked as links, below
        if MACHINE_PATHS.search(line):
            problems.append((number, MACHINE_PATHS.search(line).group(0), "a path outside the repository"))
        for m in DOC_MENTION.finditer(line):
            name, anchor = m.group(1), (m.group(2) or "")[1:]
            if not is_document_reference(name):
                continue
            if "/" not in name and name in RETIRED:
                # Bare, it may only mean a file beside the one that names it (a docs page naming
                # another; mkdocs.yml names the pages of docs/).
                doc = (root / "docs" if path.name == "mkdocs.yml" else path.parent) / name
                if not doc.is_file():
                    problems.append((number, m.group(0), "a document the repository does not hold; cite the docs/ page"))
                    continue
            else:
                doc = resolve_mention(root, path, name)
            if doc is None:
                problems.append((number, m.group(0), "no such file in the repository"))
            elif anchor and doc.is_file():
                why = anchor_problem(root, doc, anchor)
                if why:
                    problems.append((number, m.group(0), why))
        for m in FOLDER_PATH.finditer(line):
            if m.group(2):  # a pattern or a placeholder (tests/test_*.py, docs/<page>), not a path
                continue
            ref = m.group(1).rstrip(".-")
            if ref.endswith(MD):  # a document: checked above, with its anchor
                continue
            if not (root / ref).exists():
                problems.append((number, ref, "no such file or folder in the repository"))
        for m in SECTION_CITE.finditer(line):
            name = "README.md" if m.group(1) == "README" else m.group(1)
            doc = resolve_mention(root, path, name)
            if doc is not None and doc.suffix == MD:
                wanted = m.group(2).strip().lower()
                if wanted not in {h.strip().lower() for h in headings(doc)}:
                    problems.append((number, m.group(0), f"{name} has no section {m.group(2)!r}"))
    if path.suffix == MD:
        code_free = strip_code(text).splitlines()
        for number, line in enumerate(code_free, 1):
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r"[a-z][a-z0-9+.\-]*:", target):  # https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                doc = (path.parent / file_part) if file_part else path
                if not doc.exists() or not inside(root, doc):
                    problems.append((number, target, "link target not in the repository"))
                elif anchor and doc.suffix == MD:
                    why = anchor_problem(root, doc, anchor)
                    if why:
                        problems.append((number, target, why))
    return problems


def check_repository(root: Path) -> List[str]:
    """'path:line: reference -> why' for every reference in the repository that does not resolve."""
    out = []
    for path in scanned_files(root):
        rel = path.relative_to(root).as_posix()
        out += [f"{rel}:{line}: {ref} -> {why}" for line, ref, why in check_file(root, path)]
    return out


def test_every_reference_resolves() -> None:
    problems = check_repository(ROOT)
    assert not problems, "references that do not resolve inside the repository:\n" + "\n".join(problems)


def test_every_docs_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*" + MD))
    assert pages, "docs/ holds no pages"
    missing = [p for p in pages if not re.search(r":\s*" + re.escape(p) + r"\s*$", nav, re.MULTILINE)]
    assert not missing, f"docs pages missing from mkdocs.yml's nav: {missing}"


def _write(root: Path, files: Dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_the_checker_names_each_broken_reference(tmp_path: Path) -> None:
    """The check can fail: a small repository with one reference of each kind broken. (Names are
    built from parts, so that this file does not cite missing files itself.)"""
    page, missing, gone, module = "docs/" + "guide" + MD, "docs/" + "missing" + MD, "pytest_npuperf/" + "gone.py", \
        "pytest_npuperf/" + "mod.py"
    design, old_ref, readme = "DESIGN" + MD, "reference/" + "measurement" + MD, "README" + MD
    _write(tmp_path, {
        page: "# Guide\n\n## Install per release\n\nText.\n",
        readme: "\n".join([
            "# Project", "", "## Two commands", "",
            f"[ok]({page}#install-per-release) and [gone]({missing})",
            f"[bad anchor]({page}#no-such-section)",
            f"See `{page}#install` and {design}.",
            f"``{gone}`` was moved.",
            "",
        ]),
        module: "\n".join([
            f'"""Formulas of {old_ref}; see {page}#install-per-release.',
            f"Section: (see {readme}, 'Three commands'); (see {readme}, 'Two commands').",
            "A scratch file: /" + 'work/x."""',
            "",
        ]),
    })
    problems = check_repository(tmp_path)
    text = "\n".join(problems)
    expected = [
        f"{readme}:5: {missing} -> link target not in the repository",
        f"{readme}:6: {page}#no-such-section -> {page} has no heading #no-such-section",
        f"{readme}:7: {page}#install -> {page} has no heading #install",
        f"{readme}:7: {design} -> a document the repository does not hold; cite the docs/ page",
        f"{readme}:8: {gone} -> no such file or folder in the repository",
        f"{module}:1: {old_ref} -> no such file in the repository",
        f"{module}:2: {readme}, 'Three commands' -> {readme} has no section 'Three commands'",
        f"{module}:3: /" + "work/ -> a path outside the repository",
    ]
    for line in expected:
        assert line in problems, f"not reported: {line}\nreported:\n{text}"
    assert len(problems) == len(expected), text


@pytest.mark.parametrize("heading,anchor", [
    ("The current rule", "the-current-rule"),
    ("Importing torch_npu", "importing-torch_npu"),
    ("NVIDIA H200 (2026-11-26)", "nvidia-h200-2026-11-26"),
])
def test_anchors_match_github_and_mkdocs(heading: str, anchor: str) -> None:
    assert mkdocs_slug(heading) == github_slug(heading) == anchor


def test_a_spelling_that_differs_between_renderers_is_refused(tmp_path: Path) -> None:
    first, second = "docs/" + "a" + MD, "docs/" + "b" + MD
    _write(tmp_path, {first: "# Noise / calibration\n", second: "[x](a.md#noise-calibration)\n"})
    problems = check_repository(tmp_path)
    assert problems == [f"{second}:1: a.md#noise-calibration -> #noise-calibration is spelled differently by "
                        "GitHub and MkDocs: reword that heading of a.md"]
