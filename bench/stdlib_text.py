"""The Python standard library's docstrings: a text corpus nobody here wrote, on every machine that runs the
benches (bench_cluster, bench_dsir) and ``docs/make_designs.py``."""

from __future__ import annotations

import ast
import os
import sysconfig
from typing import Iterator

#: Directories of the standard library left out: installed packages and test suites.
SKIP = ("site-packages", "test", "tests", "idlelib")


def docstring_paragraphs() -> Iterator[tuple[str, str]]:
    """(file path relative to the standard library, paragraph) of every docstring paragraph of over 40
    characters, whitespace collapsed, in path order (files that do not parse are skipped). Not deduplicated:
    each caller drops repeats after its own filter."""
    root = sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            try:
                tree = ast.parse(open(path, encoding="utf-8").read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Module)):
                    for para in (ast.get_docstring(node) or "").split("\n\n"):
                        para = " ".join(para.split())
                        if len(para) > 40:
                            yield os.path.relpath(path, root), para
