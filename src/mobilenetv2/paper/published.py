"""Numbers published elsewhere, each with its source. Nothing here is computed by this project.

Conventions of the sources (found by recomputing them from our models, see docs/paper.md):
  - MobileNetV2 paper Table 4: params and MAdds rounded to 0.1M / 1M (MobileNetV2 300M is 300.8M truncated).
  - TF-slim MobileNetV2 README: MACs truncated to 1M; parameters without BatchNorm variables, 1000 classes.
  - TF-slim MobileNetV1 README: MACs rounded to 1M; parameters = checkpoint variables (conv weights,
    BN beta/moving mean/moving variance, a 1001-class logits layer with bias).
"""

from dataclasses import dataclass

SOURCES = {
    "mnv2": "Sandler et al., MobileNetV2, CVPR 2018 (arXiv:1801.04381v4)",
    "mnv2-t3": "MobileNetV2 paper, Table 3 (arXiv v4)",
    "mnv2-t4": "MobileNetV2 paper, Table 4",
    "slim-v2": "tensorflow/models research/slim/nets/mobilenet/README.md, MobileNetV2 ImageNet checkpoints",
    "slim-v1": "tensorflow/models research/slim/nets/mobilenet_v1.md, pre-trained models",
    "mnv1": "Howard et al., MobileNets, arXiv:1704.04861, Tables 6-7",
    "shufflenet": "Zhang et al., ShuffleNet, CVPR 2018 (arXiv:1707.01083), Table 1 / Table 2",
    "shufflenet-release": "megvii-model/ShuffleNet-Series README, ShuffleNetV1 (official release)",
    "nasnet": "Zoph et al., Learning Transferable Architectures, CVPR 2018 (arXiv:1707.07012), Table 2",
}


@dataclass(frozen=True)
class Table4Row:
    """One row of the MobileNetV2 paper's Table 4 (ImageNet; CPU = one large core of a Pixel 1, TF-Lite)."""

    network: str
    model: str  # our registered name
    top1: float
    params_m: float
    madds_m: float
    cpu_ms: float | None
    # The same network's numbers in its own paper / official release: (params M, MAdds M, source key).
    own_params_m: float
    own_madds_m: float
    own_source: str


TABLE_4 = (
    Table4Row("MobileNetV1", "mobilenet_v1_100", 70.6, 4.2, 575, 113, 4.24, 569, "slim-v1"),
    Table4Row("ShuffleNet (1.5)", "shufflenet_v1_g3_150", 71.5, 3.4, 292, None, 3.4, 292, "shufflenet-release"),
    Table4Row("ShuffleNet (x2)", "shufflenet_v1_g3_200", 73.7, 5.4, 524, None, 5.4, 524, "shufflenet-release"),
    Table4Row("NasNet-A", "nasnet_a_mobile", 74.0, 5.3, 564, 183, 5.3, 564, "nasnet"),
    Table4Row("MobileNetV2", "mobilenet_v2_100", 72.0, 3.4, 300, 75, 3.47, 300, "slim-v2"),
    Table4Row("MobileNetV2 (1.4)", "mobilenet_v2_140", 74.7, 6.9, 585, 143, 6.06, 582, "slim-v2"),
)


@dataclass(frozen=True)
class Table3Cell:
    channels: int
    kb: float  # the paper's "Kb": 16-bit values, 1000 bytes


# MobileNetV2 paper Table 3: the largest tensor at each spatial size. Keys are our model names; the
# ShuffleNet column is headed "ShuffleNet (2x, g=3)".
TABLE_3_SIZES = ("112x112", "56x56", "28x28", "14x14", "7x7", "1x1")
TABLE_3 = {
    "mobilenet_v1_100": (
        Table3Cell(64, 1600),
        Table3Cell(128, 800),
        Table3Cell(256, 400),
        Table3Cell(512, 200),
        Table3Cell(1024, 199),
        Table3Cell(1024, 2),
    ),
    "mobilenet_v2_100": (
        Table3Cell(16, 400),
        Table3Cell(32, 200),
        Table3Cell(64, 100),
        Table3Cell(160, 62),
        Table3Cell(320, 32),
        Table3Cell(1280, 2),
    ),
    "shufflenet_v1_g3_200": (
        Table3Cell(32, 800),
        Table3Cell(48, 300),
        Table3Cell(400, 600),
        Table3Cell(800, 310),
        Table3Cell(1600, 156),
        Table3Cell(1600, 3),
    ),
}
TABLE_3_MAX_KB = {"mobilenet_v1_100": 1600, "mobilenet_v2_100": 400, "shufflenet_v1_g3_200": 600}


@dataclass(frozen=True)
class Checkpoint:
    """One row of a TF-slim README checkpoint table."""

    width: float
    resolution: int
    macs_m: float
    params_m: float
    top1: float
    top5: float
    pixel1_ms: float | None = None


def _rows(text: str, with_latency: bool) -> tuple[Checkpoint, ...]:
    rows = []
    for line in text.strip().splitlines():
        values = [float(v) for v in line.split()]
        latency = values[6] if with_latency else None
        rows.append(Checkpoint(values[0], int(values[1]), values[2], values[3], values[4], values[5], latency))
    return tuple(rows)


# slim-v2: width resolution MACs(M) params(M) top1 top5 Pixel-1 ms
SLIM_V2 = _rows(
    """
    1.4 224 582 6.06 75.0 92.5 138.0
    1.3 224 509 5.34 74.4 92.1 123.0
    1.0 224 300 3.47 71.8 91.0 73.8
    1.0 192 221 3.47 70.7 90.1 55.1
    1.0 160 154 3.47 68.8 89.0 40.2
    1.0 128 99 3.47 65.3 86.9 27.6
    1.0 96 56 3.47 60.3 83.2 17.6
    0.75 224 209 2.61 69.8 89.6 55.8
    0.75 192 153 2.61 68.7 88.9 41.6
    0.75 160 107 2.61 66.4 87.3 30.4
    0.75 128 69 2.61 63.2 85.3 21.9
    0.75 96 39 2.61 58.8 81.6 14.2
    0.5 224 97 1.95 65.4 86.4 28.7
    0.5 192 71 1.95 63.9 85.4 21.1
    0.5 160 50 1.95 61.0 83.2 14.9
    0.5 128 32 1.95 57.7 80.8 9.9
    0.5 96 18 1.95 51.2 75.8 6.4
    0.35 224 59 1.66 60.3 82.9 19.7
    0.35 192 43 1.66 58.2 81.2 14.6
    0.35 160 30 1.66 55.7 79.1 10.5
    0.35 128 20 1.66 50.8 75.0 6.9
    0.35 96 11 1.66 45.5 70.4 4.5
    """,
    with_latency=True,
)

# slim-v1 (float checkpoints): width resolution MACs(M) params(M) top1 top5
SLIM_V1 = _rows(
    """
    1.0 224 569 4.24 70.9 89.9
    1.0 192 418 4.24 70.0 89.2
    1.0 160 291 4.24 68.0 87.7
    1.0 128 186 4.24 65.2 85.8
    0.75 224 317 2.59 68.4 88.2
    0.75 192 233 2.59 67.2 87.3
    0.75 160 162 2.59 65.3 86.0
    0.75 128 104 2.59 62.1 83.9
    0.5 224 150 1.34 63.3 84.9
    0.5 192 110 1.34 61.7 83.6
    0.5 160 77 1.34 59.1 81.9
    0.5 128 49 1.34 56.3 79.4
    0.25 224 41 0.47 49.8 74.2
    0.25 192 34 0.47 47.7 72.3
    0.25 160 21 0.47 45.5 70.3
    0.25 128 14 0.47 41.5 66.3
    """,
    with_latency=False,
)

# mnv1 Table 6: 0.75 MobileNet-224 = 325M mult-adds, 2.6M parameters (the slim README prints 317M).
MNV1_075_224_MADDS_M = 325
