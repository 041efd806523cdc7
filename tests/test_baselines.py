"""The Table 4 baselines against their published counts, each within the rounding its source prints."""

import math

import pytest
import torch

from mobilenetv2 import create_model, profile
from mobilenetv2.models.shufflenet_v1 import ShuffleUnit, channel_shuffle
from mobilenetv2.paper.common import params_without_bn, slim_checkpoint_variables


def within(value: float, printed: float, decimals: int) -> bool:
    """`value` rounds to `printed` shown with `decimals` decimals (half a unit of the last printed digit)."""
    return abs(value - printed) <= 0.5 * 10**-decimals + 1e-9


@pytest.fixture(scope="module")
def counts():
    out = {}
    for name in ("mobilenet_v1_100", "shufflenet_v1_g3_100", "shufflenet_v1_g3_150", "shufflenet_v1_g3_200"):
        model = create_model(name)
        out[name] = (model, profile(model, 224))
    return out


def test_mobilenet_v1_counts(counts):
    model, prof = counts["mobilenet_v1_100"]
    assert prof.params == 4_231_976  # CLARIFICATIONS.md: module parameters
    assert within(prof.macs / 1e6, 569, 0)  # V1 paper Table 6 and slim README
    assert within(slim_checkpoint_variables(model) / 1e6, 4.24, 2)  # slim README (checkpoint variables)


@pytest.mark.parametrize(("width", "params_m", "madds_m"), [(0.25, 0.47, 41), (0.5, 1.34, 149), (0.75, 2.59, 325)])
def test_mobilenet_v1_widths(width, params_m, madds_m):
    # params: slim README (checkpoint variables); MAdds: V1 paper Table 6 (41M, 149M, 325M; the slim README's
    # 317M for 0.75 matches neither our count nor the V1 paper).
    model = create_model(f"mobilenet_v1_{int(width * 100):03d}")
    assert within(slim_checkpoint_variables(model) / 1e6, params_m, 2)
    assert within(profile(model, 224).macs / 1e6, madds_m, 0)


@pytest.mark.parametrize(
    ("name", "params_m", "madds_m"),
    [("shufflenet_v1_g3_150", 3.4, 292), ("shufflenet_v1_g3_200", 5.4, 524)],
)
def test_shufflenet_counts(counts, name, params_m, madds_m):
    _, prof = counts[name]
    assert within(prof.params / 1e6, params_m, 1)
    assert within(prof.macs / 1e6, madds_m, 0)


def test_shufflenet_1x_matches_the_papers_complexity(counts):
    # ShuffleNet Table 1: g = 3 at 1x costs 137 MFLOPs (multiply-adds).
    assert within(counts["shufflenet_v1_g3_100"][1].macs / 1e6, 137, 0)


def test_nasnet_a_mobile_counts():
    model = create_model("nasnet_a_mobile")
    prof = profile(model, 224)
    assert within(prof.params / 1e6, 5.3, 1)
    assert within(prof.macs / 1e6, 564, 0)
    assert model.num_features == 1056  # "4 @ 1056"
    assert len(model.cells) == 2 + 12 + 2  # two stem cells, 12 normal cells, two reduction cells


@pytest.mark.parametrize(
    ("name", "params_m", "madds_m"), [("mobilenet_v2_100", 3.47, 300), ("mobilenet_v2_140", 6.06, 582)]
)
def test_mobilenet_v2_against_slim(name, params_m, madds_m):
    # slim README: parameters without BatchNorm variables, MACs truncated to whole millions.
    model = create_model(name)
    assert within(params_without_bn(model) / 1e6, params_m, 2)
    assert math.floor(profile(model, 224).macs / 1e6) == madds_m


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_shufflenet_stride2_unit_concatenates_avg_pooled_input():
    unit = ShuffleUnit(24, 240, stride=2, groups=3, group_first=False).eval()
    assert unit.depthwise.act is None  # no ReLU after the depthwise conv
    x = torch.rand(1, 24, 8, 8)
    with torch.no_grad():
        out = unit(x)
    assert out.shape == (1, 240, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    torch.testing.assert_close(out[:, :24], pooled)  # non-negative input: ReLU leaves the shortcut alone
