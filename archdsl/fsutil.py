"""Writing generated files all or nothing.

Every target writes its output through `write_files_atomically`, in two phases:

1. **Write.** Every file is written and fsync'ed into a temporary folder. When the destination
   folder does not exist yet, the temporary folder is its sibling (in the folder it will be
   created in, a symlink followed first) and is renamed into place in one step: the output
   appears whole or not at all. When it exists, the temporary folder is inside it
   (`.archdsl-tmp-<pid>-XXXX/`), so a rename is always possible: on a mount point, behind a
   symlink to another file system, under a read-only parent.
2. **Swap.** Each old file is renamed into the temporary folder, the new one into its place
   (every rename within one file system, each atomic). If any rename fails, those already
   done are undone: the previous output is left as it was, never half old and half new. A
   journal in the temporary folder records the swap, so a run killed during it (SIGKILL) is
   rolled back by the next run that writes there; a run killed while writing leaves only the
   temporary folder, which the next run removes.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Mapping, Union

from .errors import ArchError

Content = Union[bytes, str]

TMP_PREFIX = ".archdsl-tmp-"
JOURNAL = "SWAP-JOURNAL"  # inside a temporary folder: its swap had begun; lines are the swapped names
BACKUP = "old"            # inside a temporary folder: the previous versions of swapped files


def check_file_name(name: str, what: str = "generated file name") -> PurePosixPath:
    """A relative path of plain components (no '..', no absolute path, none over 255 bytes)."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if (not name or rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts)
            or str(rel) == "." or "\x00" in name):
        raise ArchError(f"{what} {name!r} must be a plain file name, not a path", None,
                        "use letters, digits, '_' and '-', e.g. --name my_net")
    long = [p for p in rel.parts if len(p.encode("utf-8")) > 255]
    if long:
        raise ArchError(f"{what} {name[:40]!r}...: a path component is {len(long[0].encode('utf-8'))} bytes, "
                        "more than file systems allow (255)", None, "choose a shorter --name")
    return rel


def _fail(outdir: Path, e: OSError):
    detail = e.strerror or str(e)
    hint = None
    if e.errno == errno.ENAMETOOLONG:
        hint = "choose a shorter --out or --name"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "is the folder writable?"
    return ArchError(f"cannot write into {outdir}: {detail}", None, hint)


def _destination(outdir: Path) -> Path:
    """Where the output really goes: a symlink (dangling or not) followed, a file refused."""
    if outdir.is_symlink():
        outdir = Path(os.path.realpath(outdir))
    if outdir.exists() and not outdir.is_dir():
        raise ArchError(f"cannot write into {outdir}: it is a file, not a folder")
    return outdir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _roll_back(tmp: Path, dest: Path) -> None:
    """Undo a swap recorded in tmp's journal: every old file back in its place, new ones removed."""
    journal = tmp / JOURNAL
    names = [line for line in journal.read_text(encoding="utf-8").splitlines() if line]
    for name in reversed(names):
        rel = PurePosixPath(name)
        final, old = dest.joinpath(*rel.parts), tmp.joinpath(BACKUP, *rel.parts)
        if old.exists():
            os.replace(old, final)
        elif not tmp.joinpath(*rel.parts).exists() and final.exists():
            final.unlink()  # the new file was moved in, and there was no old one
    journal.unlink()


def clean_leftovers(dest: Path) -> None:
    """Remove (rolling back first if a swap was interrupted) temporary folders of dead runs."""
    places = [dest] + ([dest.parent] if dest.parent != dest else [])
    for place in places:
        try:
            entries = list(place.iterdir()) if place.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if not entry.is_dir() or entry.is_symlink():
                continue
            if place != dest and name.startswith(f".{dest.name}.tmp-"):  # left by older archdsl versions
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if not name.startswith(TMP_PREFIX):
                continue
            pid = name[len(TMP_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
                continue
            if place == dest and (entry / JOURNAL).exists():
                _roll_back(entry, dest)
            shutil.rmtree(entry, ignore_errors=True)


def write_files_atomically(outdir, files: Mapping[str, Content]) -> list[Path]:
    """Write {relative name: bytes | str} into `outdir` (created if needed), all or nothing.

    Text is written as UTF-8 with its newlines untouched (the same bytes on every OS).
    Returns the written paths (under `outdir` as given), in the order of `files`.
    """
    given = Path(outdir)
    rels = [(name, check_file_name(name)) for name in files]
    try:
        dest = _destination(given)
        clean_leftovers(dest)
        fresh = not dest.exists()
        if fresh:
            dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=dest.parent if fresh else dest))
    except OSError as e:
        raise _fail(given, e) from None
    try:
        try:
            for name, rel in rels:
                data = files[name]
                if isinstance(data, str):
                    data = data.encode("utf-8")
                target = tmp.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            if fresh:
                os.chmod(tmp, 0o777 & ~_umask())
                os.rename(tmp, dest)  # the whole output appears in one step
            else:
                _swap(tmp, dest, rels)
        except OSError as e:
            raise _fail(given, e) from None
        return [given.joinpath(*rel.parts) for _, rel in rels]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(tmp: Path, dest: Path, rels) -> None:
    journal = open(tmp / JOURNAL, "w", encoding="utf-8")
    try:
        for name, rel in rels:
            final, new = dest.joinpath(*rel.parts), tmp.joinpath(*rel.parts)
            journal.write(str(rel) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
            if final.exists() or final.is_symlink():
                old = tmp.joinpath(BACKUP, *rel.parts)
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, old)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, final)
    except BaseException:
        journal.close()
        _roll_back(tmp, dest)
        raise
    journal.close()
    os.unlink(tmp / JOURNAL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
