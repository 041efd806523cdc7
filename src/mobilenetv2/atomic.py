"""Writing files so that a crash at any moment leaves either the old file or the new one, never half of one."""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask_mode(mode: int = 0o666) -> int:
    """`mode` with the process umask applied, as open() would create a file (mkstemp always makes 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextmanager
def atomic_path(
    path: str | os.PathLike, *, keep_suffix: bool = False, companions: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; on success fsync it, rename it over `path` and fsync the
    folder; on any error remove it and leave `path` as it was. A writer that fails on a full disk (torch and
    safetensors raise RuntimeError there) comes out as OSError(ENOSPC) naming `path`.

    `keep_suffix`: the temp name ends in `path`'s suffix (for writers that choose the format by it).
    `companions`: suffixes of files the writer puts beside the temp path (OpenVINO's .bin beside its .xml);
    each is renamed to the same suffix beside `path`, before `path` itself, and removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{path.suffix}" if keep_suffix else ".tmp"
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem if keep_suffix else path.name}.", suffix=suffix)
    os.fchmod(fd, umask_mode())
    os.close(fd)
    tmp = Path(name)
    extra = [(tmp.with_suffix(s), path.with_suffix(s)) for s in companions]
    try:
        yield tmp
        for p in [tmp, *(t for t, _ in extra)]:
            os.chmod(p, umask_mode())  # some writers (safetensors) replace the temp file with a 0600 one
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        for t, final in extra:
            os.replace(t, final)
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
        for t, _ in extra:
            t.unlink(missing_ok=True)


def disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system holding `folder` has less than `margin` bytes left for this user."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def write_text_atomic(path: str | os.PathLike, text: str, *, newline: str | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, newline=newline)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
