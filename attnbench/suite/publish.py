"""Writing the leaderboard all or nothing: every file is rendered, then staged beside its target, then moved into
place; a failure puts the previous files back."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from attnbench.errors import AttnbenchError, ResourceError
from attnbench.suite.formats import listing
from attnbench.tracking.record import write_atomic

OUTPUTS = ("leaderboard.md", "leaderboard.csv", "leaderboard.json")  # and plots/<section>-*.png
STAGING = ".leaderboard-staging-"  # hidden (so never read as records), inside --out, removed on success or failure


def publish(out_dir: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write all of `files` (names relative to out_dir) or none of them. Each is first staged in a hidden folder
    inside out_dir, beside a hard link (or copy) of the file it replaces; then each staged file is moved into place
    with os.replace, so every target is always a whole file, old or new. Any failure moves the previous versions
    back, removes the new files that had none and the folders this call created, and raises one error naming
    --out. A reader between two of the moves can still see a mix: no file system swaps several files at once."""
    created = _missing_folders(out_dir, files)
    staging: Path | None = None
    moved: list[tuple[Path, Path | None]] = []  # (target, its previous version's copy) already replaced
    current = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=out_dir))
        plan = []
        for name, content in files.items():
            current = target = out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(staging / "new" / name, content)
            previous = staging / "previous" / name if target.exists() else None
            if previous is not None:
                _keep(target, previous)
            plan.append((staging / "new" / name, target, previous))
        for staged, target, previous in plan:
            current = target
            os.replace(staged, target)
            moved.append((target, previous))
    except BaseException as err:
        not_restored = _roll_back(moved)
        _clean_up(staging, created)
        if isinstance(err, (OSError, ResourceError)):
            raise _write_error(out_dir, current, err, not_restored) from None
        raise
    _clean_up(staging, [])
    return [out_dir / name for name in files]


def _missing_folders(out_dir: Path, names: dict[str, Any]) -> list[Path]:
    """Folders that writing `names` into out_dir would create, deepest first (to remove again on failure)."""
    missing: set[Path] = set()
    for folder in {out_dir, *((out_dir / name).parent for name in names)}:
        while not folder.exists() and folder not in missing and folder != folder.parent:
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _keep(target: Path, copy: Path) -> None:
    """A second name for the file about to be replaced (a hard link takes no space), else a copy of it."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(target, copy)
    except OSError:
        shutil.copy2(target, copy)


def _roll_back(moved: list[tuple[Path, Path | None]]) -> list[str]:
    """Put back the previous version of every replaced target (delete a target that had none); what failed."""
    failed = []
    for target, previous in reversed(moved):
        try:
            if previous is None:
                target.unlink()
            else:
                os.replace(previous, target)
        except OSError as err:
            failed.append(f"{target} ({err.strerror or err})")
    return failed


def _clean_up(staging: Path | None, created: list[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for folder in created:
        try:
            folder.rmdir()  # only if empty: never a folder someone else has written into meanwhile
        except OSError:
            pass


def _write_error(out_dir: Path, path: Path, err: BaseException, not_restored: list[str]) -> AttnbenchError:
    code = getattr(err, "errno", None)
    if isinstance(err, ResourceError) or code == errno.ENOSPC:
        problem, fix = "no space left on the device", "free disk space, or pass --out <a folder on another disk>"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem, fix = f"not writable ({err.strerror})", "pass --out <a folder you can write>"
    else:
        problem = f"{type(err).__name__}: {getattr(err, 'strerror', None) or err}"
        fix = "check that folder, or pass another --out"
    state = ("the previous leaderboard there is unchanged" if not not_restored
             else f"could not put back the previous {listing(not_restored, 3)}")
    return ResourceError(f"cannot write the leaderboard into --out {out_dir} ({path}): {problem}; {state}: {fix}")
