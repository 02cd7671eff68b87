"""Check the docs against the repository (run by ``make lint``; standard library only).

1. Every relative link in README.md, docs/*.md and fiber/README.md resolves to a file of the
   repository (and, for ``file.md#anchor``, to a heading of that file); none leads outside it.
2. Every file the docs cite in backticks (``tests/unit/test_stats.py``, ``bench/load.py``,
   ``../docs/contract.md``, ``golden.json``) exists: from the repository root, the package or the
   doc's folder; a bare file name may also be one the code writes (``"breakdown.md"`` in a
   source file). A file outside the repository is no evidence for a reader of the docs.
3. docs/architecture.md names every module of src/fiber_endpoints (by its path inside the
   package, ``bench/load.py``, or from the repository root) and every non-test fiber/*.go file
   (``fiber/main.go``), and every module path it names exists. The module list is read from the
   filesystem, so a new module fails here until the page says where it fits.

Exit 1 with one line per problem; ``--root`` checks another tree (the tests use it).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path("src/fiber_endpoints")
ARCHITECTURE = Path("docs/architecture.md")

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FILE_TYPES = r"(?:md|py|go|c|sh|toml|ya?ml|json|png|txt|mod|sum|lock|csv|parquet|html)"
CITED_PATH = re.compile(rf"^[\w.-]+(?:/[\w.-]+)*\.{FILE_TYPES}$")
QUOTED_NAME = re.compile(rf"[\"'/]([\w.-]+\.{FILE_TYPES})[\"']")
MODULE_PATH = re.compile(r"(?<![\w./*-])((?:[\w.-]+/)*[\w.-]+\.(?:py|go|c))(?![\w/-])")


def docs(root: Path) -> list[Path]:
    found = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "fiber/README.md"]
    return [p for p in found if p.exists()]


def without_fences(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def slugs(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 for
    repeats."""
    out: set[str] = set()
    for match in re.finditer(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", without_fences(markdown), re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))
        base = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slug, n = base, 0
        while slug in out:
            n += 1
            slug = f"{base}-{n}"
        out.add(slug)
    return out


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_links(doc: Path, root: Path) -> Iterator[str]:
    text = without_fences(doc.read_text())
    prose = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)  # links in code are not links
    targets = [(m.start(), m.group(1)) for m in LINK.finditer(prose)]
    targets += [(m.start(), m.group(1)) for m in REFERENCE.finditer(prose)]
    for pos, target in sorted(targets):
        where = f"{doc.relative_to(root)}:{line_of(prose, pos)}"
        if SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc.resolve()
        if not inside(resolved, root.resolve()):
            yield f"{where}: link to {target} leaves the repository"
        elif not resolved.exists():
            yield f"{where}: link to {target}: no such file"
        elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved.read_text()):
            yield f"{where}: link to {target}: no heading with anchor #{anchor}"


def check_cited_paths(doc: Path, root: Path) -> Iterator[str]:
    text = without_fences(doc.read_text())
    known = _known_names(root)
    for match in CODE_SPAN.finditer(text):
        cited = match.group(2).strip()
        if not CITED_PATH.match(cited):
            continue
        where = f"{doc.relative_to(root)}:{line_of(text, match.start())}"
        if cited.startswith(("./", "../")):
            resolved = (doc.parent / cited).resolve()
            if not inside(resolved, root.resolve()):
                yield f"{where}: cites {cited}, outside the repository"
            elif not resolved.exists():
                yield f"{where}: cites {cited}: no such file"
        elif "/" in cited:
            bases = (root, root / PACKAGE, doc.parent)
            if not any((base / cited).exists() for base in bases):
                yield f"{where}: cites {cited}: no such file in the repository or the package"
        elif "/" not in cited and cited not in known:
            yield f"{where}: cites {cited}: not a file of the repository, nor one the code writes"


def _known_names(root: Path) -> set[str]:
    """Bare file names a doc may cite: the repository's files, and names the code writes
    (quoted in a source file: ``"breakdown.md"``)."""
    skip = {".venv", ".git", "results", "node_modules", "__pycache__", ".mypy_cache"}
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in skip]
        files += [Path(folder, name) for name in names]
    names = {p.name for p in files}
    for p in files:
        if p.suffix in (".py", ".go", ".sh") or p.name == "Makefile":
            names |= set(QUOTED_NAME.findall(p.read_text(errors="replace")))
    return names


def _counts_as_module(path: Path) -> bool:
    """Every module, except a package's ``__init__.py`` that holds no code (a docstring, a
    version string)."""
    if path.name != "__init__.py":
        return True
    tree = ast.parse(path.read_text())
    code = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return any(isinstance(node, code) for node in tree.body)


def modules(root: Path) -> list[str]:
    """What architecture.md must name: package modules (relative to the package) and the Go
    stack's non-test files (relative to the root)."""
    package = root / PACKAGE
    found = [
        p.relative_to(package).as_posix()
        for p in sorted(package.rglob("*"))
        if p.suffix in (".py", ".c") and "__pycache__" not in p.parts and _counts_as_module(p)
    ]
    found += [
        p.relative_to(root).as_posix()
        for p in sorted((root / "fiber").glob("*.go"))
        if not p.name.endswith("_test.go")
    ]
    return found


def check_architecture(root: Path) -> Iterator[str]:
    page = root / ARCHITECTURE
    if not page.exists():
        yield f"{ARCHITECTURE}: missing"
        return
    named = set()
    for match in MODULE_PATH.finditer(page.read_text()):
        path = match.group(1).removeprefix(f"{PACKAGE.as_posix()}/")
        named.add(path)
        if not (root / PACKAGE / path).exists() and not (root / path).exists():
            yield f"{ARCHITECTURE}: names {match.group(1)}, which does not exist"
    missing = [m for m in modules(root) if m not in named]
    if missing:
        yield (
            f"{ARCHITECTURE} does not name {len(missing)} module(s): {', '.join(missing)} "
            f"(add each to the row of the piece it belongs to, as its path inside {PACKAGE})"
        )


def problems(root: Path = ROOT) -> list[str]:
    out: list[str] = []
    for doc in docs(root):
        out += check_links(doc, root)
        out += check_cited_paths(doc, root)
    out += check_architecture(root)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    found = problems(args.root.resolve())
    for line in found:
        print(line)
    if found:
        print(f"check_docs: {len(found)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_docs: links, cited paths and {ARCHITECTURE} ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
