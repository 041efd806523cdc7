"""The channel rules of Table 2 and Sec. 4: make_divisible, the head rule, expansion widths."""

import pytest
import torchvision

from mobilenetv2 import create_model
from mobilenetv2.models.mobilenet_v2 import TABLE_2, head_channels, make_divisible


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (32 * 0.35, 16),  # 11.2 rounds down to 8, which is < 90% of 11.2, so one step up
        (16 * 0.35, 8),  # never below the divisor
        (24 * 0.5, 16),  # 12 -> 16 (ties round up)
        (96 * 0.75, 72),
        (160 * 1.3, 208),
        (320 * 1.4, 448),
        (1280 * 1.4, 1792),
        (1280 * 1.3, 1664),
        (3.0, 8),
        (100.0, 104),  # ties round up: int(104) // 8 * 8
        (10.0, 16),  # 8 < 9
    ],
)
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


@pytest.mark.parametrize(("width", "expected"), [(0.35, 1280), (0.75, 1280), (1.0, 1280), (1.3, 1664), (1.4, 1792)])
def test_head_stays_1280_below_width_one(width, expected):
    assert head_channels(width) == expected
    assert create_model("mobilenet_v2", width=width).num_features == expected


def test_table2_has_17_bottlenecks_and_the_papers_strides():
    assert sum(r.n for r in TABLE_2) == 17
    assert [r.t for r in TABLE_2] == [1, 6, 6, 6, 6, 6, 6]
    assert [r.c for r in TABLE_2] == [16, 24, 32, 64, 96, 160, 320]
    assert [r.s for r in TABLE_2] == [1, 2, 2, 2, 1, 2, 1]


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 0.6, 2.0])
def test_channels_match_torchvision_layer_by_layer(width):
    ours = create_model("mobilenet_v2", width=width)
    tv = torchvision.models.mobilenet_v2(width_mult=width)
    tv_convs = [(m.in_channels, m.out_channels, m.groups) for m in tv.modules() if m.__class__.__name__ == "Conv2d"]
    our_convs = [(m.in_channels, m.out_channels, m.groups) for m in ours.modules() if m.__class__.__name__ == "Conv2d"]
    assert our_convs == tv_convs


def test_expansion_width_is_rounded_to_8():
    model = create_model("mobilenet_v2", width=1.0, expansion=5)
    # 24 * 5 = 120 and 32 * 5 = 160 are multiples of 8 already; 16 * 5 = 80 too; all hidden widths are.
    assert all(b.hidden_channels % 8 == 0 for b in model.blocks)
    assert model.blocks[1].hidden_channels == 80
