"""Writing generated files all or nothing.

Every target writes its output through `write_files_atomically`: the files are
first written to a temporary folder next to the destination (same file system),
then each is renamed into place. A failure while writing (a full disk, an
exception in the middle) leaves the destination untouched: no half-written file,
no good file clobbered. A rename replaces a file in one step, so a reader sees
either the old file or the new one, never a mix inside a file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Mapping, Union

from .errors import ArchError

Content = Union[bytes, str]


def _check_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name.replace("\\", "/"))
    if not name or rel.is_absolute() or any(part in ("", "..") for part in rel.parts) or str(rel) == ".":
        raise ValueError(f"generated file name must be a plain relative path, got {name!r}")
    return rel


def write_files_atomically(outdir, files: Mapping[str, Content]) -> list[Path]:
    """Write {relative name: bytes | str} into `outdir` (created if needed), all or nothing.

    Text is written as UTF-8 with its newlines untouched (the same bytes on every OS).
    Returns the written paths, in the order of `files`.
    """
    outdir = Path(outdir)
    rels = [(name, _check_name(name)) for name in files]
    if outdir.exists() and not outdir.is_dir():
        raise ArchError(f"cannot write into {outdir}: it is a file, not a folder")
    parent = outdir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name or 'out'}.tmp-", dir=parent))
    except OSError as e:
        raise ArchError(f"cannot write into {outdir}: {e.strerror or e}") from None
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
            outdir.mkdir(parents=True, exist_ok=True)
            written = []
            for name, rel in rels:
                final = outdir.joinpath(*rel.parts)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp.joinpath(*rel.parts), final)
                written.append(final)
        except OSError as e:
            raise ArchError(f"cannot write into {outdir}: {e.strerror or e}") from None
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
