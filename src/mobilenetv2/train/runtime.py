"""Where and how a run executes: device, processes (torchrun), precision, determinism."""

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None


def setup(device: str) -> Runtime:
    """One process, or one of torchrun's (RANK/WORLD_SIZE/LOCAL_RANK in the environment): NCCL on GPUs,
    gloo on CPUs. Rendezvous (MASTER_ADDR/PORT, multi-node flags) is torchrun's business."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world_size, local_rank)


def teardown(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_distributed(model: nn.Module, rt: Runtime, *, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """(model, what the step calls): DDP around the model under torchrun, the model itself otherwise."""
    if not rt.distributed:
        return model, model
    if sync_bn:
        if rt.device.type == "cpu":
            raise ValueError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm has no CPU implementation")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(values: torch.Tensor, rt: Runtime) -> torch.Tensor:
    """Sum a float64 tensor over processes (gloo and NCCL both handle it)."""
    if rt.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def all_gather_strings(items: list[str], rt: Runtime) -> list[str]:
    if not rt.distributed:
        return items
    gathered: list[list[str] | None] = [None] * rt.world_size
    dist.all_gather_object(gathered, items)
    return [s for part in gathered for s in (part or [])]


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto": bf16 on GPUs that support it (else fp16); on CPUs bf16 only with native bf16 instructions
    (AVX512-BF16 or AMX), where it is faster; otherwise fp32 (emulated bf16 is slower than fp32)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def make_deterministic(enabled: bool) -> None:
    """Bitwise-reproducible kernels when asked (cuBLAS needs its workspace setting before first use)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
