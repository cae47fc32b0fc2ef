"""Find every torch_npu / torch.npu use in the project's source, with the keywords of each call.

Comments and strings are skipped (tokenize), so docstrings that mention a name do not count;
aliases (``pytest_npuperf.stack.npu_api.ALIASES``) map a local name to the torch_npu object it
stands for in one file.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pytest_npuperf", "perf_tests", "benchmarks", "examples", "conftest.py")


class Use(NamedTuple):
    file: str
    line: int
    path: str
    keywords: Tuple[str, ...]


def project_files() -> List[Path]:
    files: List[Path] = []
    for name in SOURCES:
        p = ROOT / name
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(p.rglob("*.py")))
    return files


def _call_keywords(tokens: List[tokenize.TokenInfo], i: int) -> Tuple[str, ...]:
    """Keyword names at depth 1 of the call whose '(' is tokens[i]."""
    depth = 0
    names = []
    for j in range(i, len(tokens)):
        tok = tokens[j]
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif (depth == 1 and tok.type == tokenize.NAME and j + 1 < len(tokens)
              and tokens[j + 1].type == tokenize.OP and tokens[j + 1].string == "="
              and tokens[j - 1].type == tokenize.OP and tokens[j - 1].string in "(,"):
            names.append(tok.string)
    return tuple(names)


def scan_text(text: str, file: str, aliases: Dict[str, str]) -> List[Use]:
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    uses: List[Use] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        # the start of a dotted chain: a NAME not preceded by '.'
        if tok.type != tokenize.NAME or (i and tokens[i - 1].type == tokenize.OP and tokens[i - 1].string == "."):
            i += 1
            continue
        parts = [tok.string]
        j = i + 1
        while (j + 1 < len(tokens) and tokens[j].type == tokenize.OP and tokens[j].string == "."
               and tokens[j + 1].type == tokenize.NAME):
            parts.append(tokens[j + 1].string)
            j += 2
        chain = ".".join(parts)
        path = None
        if parts[0] == "torch_npu" and len(parts) > 1:
            path = chain
        elif parts[:2] == ["torch", "npu"] and len(parts) > 2:
            path = "torch_npu.npu." + ".".join(parts[2:])
        else:
            for alias, target in sorted(aliases.items(), key=lambda kv: -len(kv[0])):
                if chain == alias or chain.startswith(alias + "."):
                    rest = chain[len(alias):]
                    path = target + rest if rest else None
                    break
        if path is not None:
            is_call = j < len(tokens) and tokens[j].type == tokenize.OP and tokens[j].string == "("
            keywords = _call_keywords(tokens, j) if is_call else ()
            uses.append(Use(file, tok.start[0], path, keywords))
        i = j
    return uses


def scan_project() -> List[Use]:
    from pytest_npuperf.stack.npu_api import ALIASES

    uses: List[Use] = []
    for path in project_files():
        rel = path.relative_to(ROOT).as_posix()
        uses.extend(scan_text(path.read_text(encoding="utf-8"), rel, ALIASES.get(rel, {})))
    return uses
