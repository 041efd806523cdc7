"""Reading weights files from other libraries without ever running code from them.

PyTorch `.pth` files are pickles, and a pickle can call any function while it loads. They are opened with
`torch.load(weights_only=True)`, whose restricted unpickler accepts tensors and plain containers and refuses
everything else before it runs. Safetensors files are plain data and need no such care.
"""

import hashlib
import logging
import os
import warnings
from pathlib import Path

import torch

from mobilenetv2.errors import UserError

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
# Keys under which training checkpoints nest the weights; the first present wins (plain state_dicts have none).
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    return path


def load_torch_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from a `.pth`/`.pt`/`.bin` pickle or a `.safetensors` file, as {name: tensor}."""
    path = require_file(path)
    if path.suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    return _state_dict_of(safe_torch_load(path), path)


# torch.save writes its zip members stored (uncompressed); a member that inflates to many times the file's
# size is a zip bomb, refused before torch.load reads it into memory.
MAX_EXPANSION, EXPANSION_SLACK = 2, 64 << 20


def check_expansion(path: Path) -> None:
    """UserError when the zip archive at `path` would expand to more than 2x its size (+ 64 MiB) in memory."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            expanded = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable torch zip file ({type(exc).__name__}: {exc})") from None
    limit = MAX_EXPANSION * path.stat().st_size + EXPANSION_SLACK
    if expanded > limit:
        raise UserError(
            f"refusing to load {path}: its zip members expand to {expanded / 2**20:.0f} MiB from a "
            f"{path.stat().st_size / 2**20:.1f} MiB file (torch.save stores tensors uncompressed); nothing was read"
        )


def safe_torch_load(path: str | os.PathLike) -> object:
    """torch.load(weights_only=True) after bounding what a zip may expand to; any refusal is one UserError
    line saying what was refused and why (never torch's advice to retry with weights_only=False)."""
    path = require_file(path)
    check_expansion(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing; the error says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise UserError(f"{path}: not enough memory to load it") from None
    except Exception as exc:
        raise UserError(_refusal(path, exc)) from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise UserError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None


def _refusal(path: Path, exc: Exception) -> str:
    """One line: why torch.load(weights_only=True) refused the file, naming any callable the pickle imports."""
    imported = _pickle_imports(path)
    if imported is None:
        return f"{path} is not a PyTorch weights file (torch.load cannot read it: {type(exc).__name__})"
    unsafe = sorted({name for name in imported if not name.startswith(SAFE_IMPORT_PREFIXES)})
    if unsafe:
        return (
            f"refusing to load {path}: the pickle asks to import and call {', '.join(unsafe[:3])}; "
            "only plain state_dicts (tensors in dicts) are accepted, nothing was executed"
        )
    return (
        f"refusing to load {path}: torch.load(weights_only=True) accepts only tensors in plain containers; "
        "re-save it with torch.save(model.state_dict(), path)"
    )


SAFE_IMPORT_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set")


def _pickle_imports(path: Path) -> list[str] | None:
    """The module.name pairs a pickle would import, found by reading opcodes only (nothing runs).
    None when the file is no pickle at all (random bytes, truncated archives)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                member = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(member)
        else:
            data = path.read_bytes()
        names, strings = [], []
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return names
    except Exception:
        return None


def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                log.info("%s: using the weights under %r", path.name, key)
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path} holds no state_dict (expected a dict of tensors, got {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{path} holds no tensors")
    prefix = "module."
    if all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors
