"""This checkout and, optionally, a commit checked out beside it: the code a before/after
benchmark measures in turn."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def code_trees(before: str | None) -> Iterator[list[tuple[Path, str]]]:
    """``[(tree, label)]``: a temporary git worktree of ``before`` (if given), then this tree.

    The worktree is removed on exit.
    """
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    trees = [(ROOT, f"this tree ({head})")]
    with tempfile.TemporaryDirectory() as where:
        old = Path(where) / "before"
        if before:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(old), before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            trees.insert(0, (old, f"before ({before})"))
        try:
            yield trees
        finally:
            if before:
                subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
