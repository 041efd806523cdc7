"""The run folder's rules: one writer at a time, no silent restart over an earlier run, resumes that keep the
run's own config, no stale temp files, and a checkpoint when the run is interrupted.

A run holds an exclusive lock on OUT/.lock (fcntl, released by the kernel when the process dies, so a killed
run never leaves a stale lock). Starting fresh where a run already left a checkpoint or a model needs
`--overwrite`; `--resume` continues from OUT/config.toml with only the flags given explicitly changed, and
refuses by name any change that would make the checkpoint's tensors or data order mean something else.
"""

import dataclasses
import fcntl
import logging
import os
import signal
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.train.checkpoint import plain
from mobilenetv2.train.config import RUN_ONLY, TrainConfig

log = logging.getLogger(__name__)

RUN_FILES = ("checkpoint-last.pt", "model.safetensors")
# Changing these on resume would load the checkpoint into another architecture or replay other batches.
FIXED_ON_RESUME = ("model", "model_options", "weights", "dataset", "data", "resolution", "batch_size", "seed")


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a run folder")


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT/.lock for the duration; a second writer fails at once with one line."""
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"run folder {out} is in use by another training run") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def remove_stale_temp_files(out: Path) -> int:
    """Temp files of atomic writes that a killed process left behind (.NAME.*.tmp); only called under the lock."""
    stale = [p for p in out.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temp file(s) from %s", len(stale), out)
    return len(stale)


def refuse_fresh_over_run(out: Path, *, overwrite: bool) -> None:
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        raise UserError(
            f"{out} already holds a run ({found[0]}); continue it with --resume, or start again with --overwrite"
        )


def resume_config(cfg: TrainConfig) -> TrainConfig:
    """The run's saved config with the explicitly given fields applied; architecture, data and order fields
    must match the run's (refused by flag name), others (epochs, max_steps, workers...) may change."""
    out = Path(cfg.out) if cfg.out else None
    if out is None:
        raise UserError("--resume needs --out RUN (the run folder to continue)")
    saved_path = out / "config.toml"
    if not saved_path.is_file():
        return cfg
    try:
        saved = tomllib.loads(saved_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{saved_path}: invalid TOML ({exc})") from None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged: dict[str, Any] = {k: v for k, v in saved.items() if k in known}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or f.name in RUN_ONLY or (f.name == "model_options" and not value):
            continue
        if f.name == "model_options":
            changed = {k: v for k, v in value.items() if saved.get("model_options", {}).get(k) != v}
            if changed:
                key = next(iter(changed))
                raise UserError(
                    f"--resume: --{key.replace('_', '-')} {changed[key]} differs from the run's "
                    f"{saved.get('model_options', {}).get(key)!r}; the architecture cannot change on resume"
                )
            continue
        if f.name == "resolution" and isinstance(value, int):
            value = (value, value)
        if f.name in FIXED_ON_RESUME and plain(value) != plain(saved.get(f.name)):
            flag = "--" + f.name.replace("_", "-")
            raise UserError(f"--resume: {flag} {value} differs from the run's {saved.get(f.name)!r}")
        merged[f.name] = value
    merged.update(out=str(out), resume=True, overwrite=cfg.overwrite)
    if isinstance(merged.get("resolution"), list):
        merged["resolution"] = tuple(merged["resolution"])
    return TrainConfig(**merged)


class Interrupts:
    """SIGINT/SIGTERM set a flag the loop checks after each step (it then checkpoints and stops), instead of
    killing the process between checkpoints. A second signal interrupts at once."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "Interrupts":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.caught is not None:
            raise KeyboardInterrupt
        self.caught = signum
        log.warning("interrupt received: checkpointing after this step (interrupt again to stop at once)")

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
