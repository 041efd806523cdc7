"""A batch of the data loader is pinned when DataLoader(pin_memory=True) asks for it (faster host-to-GPU copies)."""

import pytest
import torch
from torch.utils.data._utils.pin_memory import pin_memory as torch_pin_memory

from mobilenetv2.data.loader import Batch


def make_batch() -> Batch:
    return Batch(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), ["bad.jpg"])


def test_pytorch_pinning_reaches_batch_pin_memory(monkeypatch):
    """What DataLoader's pinning thread calls on each batch; Tensor.pin_memory is mocked (it needs an accelerator)."""
    pinned = []

    def fake_pin(self, *args, **kwargs):
        pinned.append(tuple(self.shape))
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    out = torch_pin_memory(make_batch())
    assert isinstance(out, Batch) and out.skipped == ["bad.jpg"]
    assert sorted(pinned) == [(2,), (2, 3, 8, 8)]  # images and labels both pinned


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned host memory needs CUDA")
def test_dataloader_pins_batches_on_cuda():
    loader = torch.utils.data.DataLoader([0], batch_size=1, collate_fn=lambda _: make_batch(), pin_memory=True)
    batch = next(iter(loader))
    assert isinstance(batch, Batch) and batch.images.is_pinned() and batch.targets.is_pinned()
