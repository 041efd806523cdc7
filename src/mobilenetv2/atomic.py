"""Writing files so that a crash at any moment leaves either the old file or the new one, never half of one."""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; on success fsync it, rename it over `path` and fsync the
    folder; on any error remove it and leave `path` as it was. A writer that fails on a full disk (torch and
    safetensors raise RuntimeError there) comes out as OSError(ENOSPC) naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except Exception as exc:
        if not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) and disk_full(path.parent):
            raise OSError(errno.ENOSPC, "no space left on device", str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system holding `folder` has less than `margin` bytes left for this user."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
