"""Per-pixel labels at the input size without the full-size logits (Sec. 5.1's point, carried to the output).

The segmenter's logits live at output stride 16 or 8; the (N, C, H, W) logits at the input size are the largest
tensor of the whole forward pass at segmentation sizes (176 MB for 21 classes at 1024x2048, fp32). Predicting
needs only their argmax. `upsampled_labels` computes it a band of output rows at a time: the bilinear
upsampling (align_corners=False, as `F.interpolate`) runs along the width once at the low height, then along
the height band by band, each band reduced to its argmax before the next. PyTorch's CPU kernel interpolates
along the width first as well, so the values agree with `F.interpolate` to float rounding; an argmax can differ
only where two classes' logits tie within it.
"""

import torch
import torch.nn.functional as F

BAND_BYTES = 1 << 20  # one (N, C, rows, W) band of logits; three are alive at a time (two source rows, the result)


def source_rows(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output row: the two source rows and the weight of the second, as PyTorch's linear
    interpolation computes them with align_corners=False (scale in/out, source clamped at 0)."""
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    low = src.long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    return low.to(device), high.to(device), (src - low.float()).to(device)


def upsampled_labels(logits: torch.Tensor, size: tuple[int, int], *, band_bytes: int = BAND_BYTES) -> torch.Tensor:
    """(N, C, h, w) logits -> (N, H, W) labels: argmax over C of the bilinear upsampling to `size` (H, W).

    uint8 when C <= 256 (a palette PNG's type), else int64. Peak extra memory: the width-upsampled
    (N, C, h, W) logits plus one band, instead of the (N, C, H, W) logits."""
    n, c, h, _ = logits.shape
    out_h, out_w = size
    wide = F.interpolate(logits, size=(h, out_w), mode="bilinear", align_corners=False)  # the height is kept
    low, high, weight = source_rows(h, out_h, logits.device)
    labels = torch.empty(n, out_h, out_w, dtype=torch.uint8 if c <= 256 else torch.long, device=logits.device)
    rows = max(1, band_bytes // max(1, n * c * out_w * logits.element_size()))
    for start in range(0, out_h, rows):
        stop = min(out_h, start + rows)
        lam = weight[start:stop].view(1, 1, -1, 1).to(logits.dtype)
        band = torch.lerp(wide[:, :, low[start:stop]], wide[:, :, high[start:stop]], lam)
        labels[:, start:stop] = band.argmax(dim=1)
    return labels
