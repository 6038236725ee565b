"""A product source reads only files inside the folder it was given.

A folder, catalog.json or CSV handed to ``flipsync upload`` may come from someone else (a
supplier's archive, a marketplace export). A notes.txt that is a symlink to
~/.aws/credentials, or a photos column naming /home/me/private.jpg or ../../x.png, would be
read and its content sent to a model and written into a listing. Such a file is refused by
name with the reason, before anything is read from it or uploaded; a file the seller names
directly on the command line is theirs to name.
"""

from __future__ import annotations

from pathlib import Path


def outside_problem(root: Path, path: Path) -> str | None:
    """Why the file at path may not be read for a source rooted at root (it resolves, through
    symlinks or .., outside root), or None when it lies inside."""
    try:
        real = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"{path}: cannot be resolved ({exc})"
    if real.is_relative_to(base):
        return None
    return (
        f"{path}: leads outside {root} (to {real}): a symlink, a ../ or an absolute path; "
        "copy the file into the folder to use it"
    )


def source_root(path: Path) -> Path:
    """The folder a source's files must lie in: the folder itself, or a file's folder."""
    return path if path.is_dir() else path.parent
