"""Classify image files with a weights file: preprocessing and class names come from the file's header.

Every input gets one result, in input order; a file that cannot be read (missing, not an image, truncated,
over the pixel limit) gets an error message and the others are still predicted.
"""

import fnmatch
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from mobilenetv2.data.images import IMAGE_EXTENSIONS, MAX_PIXELS, check_max_pixels, file_problem, open_image, walk_files
from mobilenetv2.errors import UserError
from mobilenetv2.meta import find_meta, meta_of


@dataclass
class Prediction:
    file: str
    top: list[dict[str, Any]] = field(default_factory=list)  # [{index, label, prob}], most likely first
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "top": self.top, "error": self.error}


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, folders as the image files under them (recursively, sorted), globs as their matches.
    A name that matches nothing stays in the list so that it is reported as missing."""
    return [f for f, _ in expand_checked(inputs)]


def expand_checked(inputs: list[str]) -> list[tuple[str, str | None]]:
    """`expand_inputs` with what is wrong with each entry found while searching (a symlink loop, a dangling
    symlink, a FIFO): those are reported per file; folders are walked loop-safe (`walk_files`)."""
    found: list[tuple[str, str | None]] = []
    for item in inputs:
        if os.path.isdir(item):
            hits = [(p, e) for p, e in walk_files(item) if e is not None or Path(p).suffix.lower() in IMAGE_EXTENSIONS]
            found += hits or [(item, None)]  # reported as a folder without images
        elif glob.has_magic(item) and not os.path.exists(item):
            found += _glob(item) or [(item, None)]
        else:
            found.append((item, None))
    return found


def _glob(pattern: str) -> list[tuple[str, str | None]]:
    """Matches of `pattern`; a recursive `**` is walked with `walk_files` (glob.glob follows symlink loops)."""
    if "**" not in pattern:
        return [(m, None) for m in sorted(glob.glob(pattern)) if os.path.isfile(m)]
    parts = Path(pattern).parts
    cut = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base, rest = Path(*parts[:cut]) if cut else Path("."), str(Path(*parts[cut:]))
    if not base.is_dir():
        return []
    short = rest.removeprefix("**/")  # "**/" also matches no folder at all, as in glob
    hits = []
    for path, problem in walk_files(base):
        rel = os.path.relpath(path, base)
        if fnmatch.fnmatch(rel, rest) or fnmatch.fnmatch(rel, short) or (problem and "loop" in problem):
            shown = path if cut else os.path.relpath(path)
            hits.append((shown, problem))
    return hits


def class_labels(model: nn.Module, num_classes: int) -> list[str]:
    """Names from the weights header; ImageNet-1k names for a 1000-class model without any; else indices."""
    meta = find_meta(model)
    names = meta.class_names if meta is not None else None
    if not names and num_classes == 1000:
        from mobilenetv2.weights import imagenet_class_names

        names = imagenet_class_names()
    names = list(names or [])
    return [names[i] if i < len(names) else str(i) for i in range(num_classes)]


def load_for_prediction(
    weights: str | os.PathLike, *, splits: int = 1, engine: str = "auto"
) -> tuple[nn.Module, Callable, list[str]]:
    """(runnable model, PIL -> tensor transform, class labels) from a weights file; `splits` and `engine` as in
    `for_inference`."""
    from mobilenetv2.data.transforms import eval_transform
    from mobilenetv2.infer.fast import for_inference
    from mobilenetv2.models import MobileNetV2
    from mobilenetv2.weights import load

    model = load(weights)
    labels = class_labels(model, model.num_classes)
    transform = eval_transform(meta_of(model).preprocessing)
    runnable = for_inference(model, splits=splits, engine=engine) if isinstance(model, MobileNetV2) else model.eval()
    return runnable, transform, labels


def _decode(path: str, transform: Callable, max_pixels: int) -> tuple[torch.Tensor | None, str | None]:
    if os.path.islink(path) or not os.path.exists(path):
        problem = file_problem(path)
        if problem not in (None, "a folder"):
            return None, f"no such file: {path}" if problem == "no such file" else f"{path}: {problem}"
    if not os.path.exists(path):
        return None, f"no such file: {path}"
    if os.path.isdir(path):
        return None, f"{path} is a folder without images"
    try:
        return transform(open_image(path, max_pixels=max_pixels)), None
    except (UserError, OSError) as exc:
        return None, str(exc).splitlines()[0]


def predict_files(
    inputs: list[str],
    *,
    weights: str | os.PathLike,
    topk: int = 5,
    batch_size: int = 16,
    splits: int = 1,
    engine: str = "auto",
    max_pixels: int = MAX_PIXELS,
) -> list[Prediction]:
    """Top-k predictions for every image in `inputs` (files, folders, globs), batched, in input order."""
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    check_max_pixels(max_pixels)
    checked = expand_checked(inputs)
    if not checked:
        raise UserError("no input images given")
    files = [f for f, _ in checked]
    model, transform, labels = load_for_prediction(weights, splits=splits, engine=engine)
    k = min(topk, len(labels))
    results = [Prediction(file=f, error=f"{f}: {e}" if e else None) for f, e in checked]
    progress = [0]  # files finished, in order
    try:
        _predict_batches(model, transform, labels, results, k, batch_size, max_pixels, progress)
    except KeyboardInterrupt:
        raise PredictionInterrupted(results[: progress[0]], len(files)) from None
    return results


class PredictionInterrupted(KeyboardInterrupt):
    """Ctrl-C during `predict_files`: `done` holds the results of the files finished before it."""

    def __init__(self, done: list[Prediction], total: int) -> None:
        super().__init__(f"interrupted after {len(done)} of {total} files")
        self.done, self.total = done, total


def _predict_batches(model, transform, labels, results, k, batch_size, max_pixels, progress: list[int]) -> None:
    files = [r.file for r in results]
    with tqdm(total=len(files), unit="img", disable=len(files) <= batch_size or None, leave=False) as bar:
        for start in range(0, len(files), batch_size):
            batch, rows = [], []
            for i in range(start, min(start + batch_size, len(files))):
                if results[i].error is not None:
                    continue
                tensor, error = _decode(files[i], transform, max_pixels)
                if error is None:
                    batch.append(tensor)
                    rows.append(i)
                else:
                    results[i].error = error
            if batch:
                with torch.inference_mode():
                    probs = torch.softmax(model(torch.stack(batch)), dim=1)
                values, indices = probs.topk(k, dim=1)
                for i, vals, idxs in zip(rows, values.tolist(), indices.tolist(), strict=True):
                    results[i].top = [
                        {"index": j, "label": labels[j], "prob": round(p, 6)} for j, p in zip(idxs, vals, strict=True)
                    ]
            bar.update(min(batch_size, len(files) - start))
            progress[0] = min(start + batch_size, len(files))


def format_predictions(results: list[Prediction]) -> str:
    """Human-readable: one block per file, `prob  label (index)` per line; errors as `file: error: message`."""
    lines = []
    for r in results:
        name = printable(r.file)
        if r.error is not None:
            lines.append(f"{name}: error: {printable(r.error.removeprefix(f'{r.file}: '))}")
            continue
        lines.append(name)
        lines += [f"  {t['prob']:7.2%}  {t['label']} ({t['index']})" for t in r.top]
    return "\n".join(lines)


def printable(text: str) -> str:
    """`text` with control characters escaped (a newline in a file name must not split the output)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
