"""for_inference: the BN-folded channels_last fast path and Sec. 5.1's split schedule give the plain model's outputs,
on every engine; what runs compiled is decided once; graphs are compiled once per input shape and reused."""

import copy
import logging
import pickle

import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.infer.graph import CompiledSegment, graph_available
from mobilenetv2.infer.ops import channel_slices

ATOL = 1e-4
# "eager" runs every op from Python, "graph" compiles every op, "auto" (default) compiles the ops after the split ones.
ENGINES = ("eager", "auto", "graph") if graph_available() else ("eager", "auto")
needs_graph = pytest.mark.skipif(not graph_available(), reason="this PyTorch has no oneDNN Graph")


def trained_like(name: str = "mobilenet_v2", **options) -> torch.nn.Module:
    """A model whose BN statistics and classifier are far from init, so logits are O(1) and errors show."""
    model = randomize_bn_(mobilenetv2.create_model(name, **options)).eval()
    with torch.no_grad():
        model.classifier[1].weight.normal_(0, 1.0)
    return model


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    error = (actual - expected).abs().max().item()
    assert error <= ATOL, f"max abs difference {error:.2e} > {ATOL}"


def assert_same_outputs(model: torch.nn.Module, x: torch.Tensor, splits: int, runs=None) -> None:
    """`runs`: (schedule, engine) pairs; default every engine with the peak schedule, and the uniform one eagerly.
    (Compiling costs seconds on a shared 2-core machine: the engines share the ops' code, so the traced split
    path is covered once, in the splits test.)"""
    with torch.no_grad():
        expected = model(x)
    assert expected.abs().max() > 0.1  # the comparison below is not between near-zero logits
    runs = runs or [("peak", e) for e in ENGINES] + ([("uniform", "eager")] if splits > 1 else [])
    for schedule, engine in runs:
        fast = mobilenetv2.for_inference(model, splits=splits, schedule=schedule, engine=engine)
        for _ in range(3 if fast.compiled_ops() else 1):  # a graph profiles, then compiles, then runs
            assert_close(fast(x), expected)


@pytest.mark.parametrize("name", mobilenetv2.list_models("mobilenet_v2*"))
def test_every_registered_variant_matches_the_plain_model(name):
    model = trained_like(name, num_classes=10)
    assert_same_outputs(model, torch.randn(2, 3, 32, 32), splits=3, runs=[("peak", "auto"), ("uniform", "eager")])


@pytest.mark.parametrize("splits", [1, 2, 3, 4, 5])
def test_every_split_matches_the_plain_model(splits):
    assert_same_outputs(trained_like(width=0.35, num_classes=10), torch.randn(1, 3, 48, 40), splits)


@pytest.mark.parametrize(
    "options",
    [
        {"padding": "tf"},
        {"output_stride": 8},
        {"output_stride": 16, "padding": "tf"},
        {"shortcut": "none"},
        {"bottleneck_activation": "relu6"},
        {"expansion": 1.0},
        {"width": 0.2},  # stem and first block both 8 channels: the first block has a shortcut, no fusion
        {"in_channels": 1},
    ],
    ids=str,
)
@pytest.mark.parametrize("splits", [1, 3])
def test_options_match_the_plain_model(options, splits):
    options = {"width": 0.35, "num_classes": 10, **options}
    in_channels = options.get("in_channels", 3)
    runs = [("peak", "eager"), ("peak", "auto")] if splits == 1 else [("peak", "eager"), ("uniform", "eager")]
    # An odd, non-square size exercises TF 'SAME' padding's uneven borders.
    assert_same_outputs(trained_like(**options), torch.randn(2, in_channels, 45, 37), splits, runs)


def test_expansion_shortcut_runs_as_the_folded_model_and_refuses_splits(caplog):
    model = trained_like(width=0.35, shortcut="expansion")
    with caplog.at_level(logging.INFO, logger="mobilenetv2.infer"):
        assert_same_outputs(model, torch.randn(1, 3, 64, 64), splits=1, runs=[("peak", "auto"), ("peak", "eager")])
    assert "plain BN-folded model (no splits, no graph)" in caplog.text
    with pytest.raises(ValueError, match="shortcut='expansion'.*splits"):
        mobilenetv2.for_inference(model, splits=2)
    with pytest.raises(ValueError, match="shortcut='expansion'"):
        mobilenetv2.for_inference(model, engine="graph")


@pytest.mark.parametrize("splits", [1, 4])
def test_contiguous_and_channels_last_inputs_agree_and_are_not_modified(splits):
    model = trained_like(width=0.35)
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    copy_ = x.clone()
    fast = mobilenetv2.for_inference(model, splits=splits)
    assert_close(fast(x), fast(x_cl))
    assert torch.equal(x, copy_) and torch.equal(x_cl, copy_)


def test_the_original_model_is_untouched_and_the_fast_one_is_eval_only_and_immutable():
    model = trained_like(width=0.35).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = mobilenetv2.for_inference(model, splits=2)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not fast.training and fast.eval() is fast
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    with pytest.raises(RuntimeError, match="eval-only"):
        fast.train()
    for cast in (lambda f: f.to("cpu"), lambda f: f.double(), lambda f: f.cuda(), lambda f: f.half()):
        with pytest.raises(RuntimeError, match=r"for_inference\(\)"):
            cast(fast)
    out = fast(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and not out.requires_grad


def test_other_dtypes_are_converted_not_cast():
    model = trained_like(width=0.35)
    double = mobilenetv2.for_inference(model.double())  # the model's dtype when converted; not compiled
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    assert double.compiled_ops() == []
    with torch.no_grad():
        torch.testing.assert_close(double(x), model(x), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="runs torch.float64 inputs"):
        double(x.float())
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        double(x[:, :1])
    if graph_available():
        with pytest.raises(ValueError, match="engine='graph' compiles float32 CPU models"):
            mobilenetv2.for_inference(model, engine="graph")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_splits_are_refused(bad):
    with pytest.raises(ValueError, match="splits"):
        mobilenetv2.for_inference(mobilenetv2.create_model("mobilenet_v2_035"), splits=bad)


def test_other_architectures_and_options_are_refused_with_a_message():
    class NotMobileNet(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="MobileNetV2"):
        mobilenetv2.for_inference(NotMobileNet())
    model = mobilenetv2.create_model("mobilenet_v2_035")
    with pytest.raises(ValueError, match="engine must be one of auto, graph, eager"):
        mobilenetv2.for_inference(model, engine="jit")
    with pytest.raises(ValueError, match="schedule must be one of peak, uniform"):
        mobilenetv2.for_inference(model, splits=2, schedule="greedy")


@pytest.mark.parametrize("channels, splits", [(96, 5), (32, 3), (20, 7), (3, 5), (1280, 4)])
def test_channel_slices_cover_every_channel_once_in_near_equal_groups(channels, splits):
    slices = channel_slices(channels, splits)
    assert [c for a, b in slices for c in range(a, b)] == list(range(channels))
    sizes = [b - a for a, b in slices]
    assert len(slices) == min(splits, channels) and max(sizes) - min(sizes) <= 1


def test_schedules_give_the_same_outputs():
    model = trained_like("mobilenet_v2_050", num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    fast = [mobilenetv2.for_inference(model, splits=4, schedule=s, engine="eager") for s in ("peak", "uniform")]
    # The same kernels over other slices: only the summation order differs.
    torch.testing.assert_close(fast[0](x), fast[1](x), rtol=0, atol=1e-5)


def test_what_runs_compiled_is_decided_when_built():
    model = trained_like(width=0.35)
    names = mobilenetv2.for_inference(model, engine="eager").op_names() + ["classifier"]
    compiled = {e: mobilenetv2.for_inference(model, splits=2, engine=e).compiled_ops() for e in ENGINES}
    assert compiled["eager"] == []
    hybrid = mobilenetv2.for_inference(model, splits=2)  # split ops eager (their memory), the rest compiled
    last_split = max(i for i, s in enumerate(hybrid.op_splits()) if s > 1)
    assert compiled["auto"] == (names[last_split + 1 :] if graph_available() else [])
    assert mobilenetv2.for_inference(model, splits=2, schedule="uniform").compiled_ops() == []  # the head is split
    if graph_available():
        assert compiled["graph"] == names
        assert mobilenetv2.for_inference(model).compiled_ops() == names  # unsplit: the whole network


@needs_graph
def test_graphs_are_compiled_once_per_shape_and_the_least_recent_is_dropped(monkeypatch):
    monkeypatch.setattr(CompiledSegment, "LIMIT", 2)
    model = trained_like(width=0.35)
    fast = mobilenetv2.for_inference(model)
    before = torch._C._jit_llga_enabled()
    sizes = (64, 64, 64, 48, 64, 56)  # (at batch 1, 32x32 leaves a 1x1 map that oneDNN Graph fails to compile)
    for size in sizes:
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            assert_close(fast(x), model(x))
    assert torch._C._jit_llga_enabled() == before  # the global switch is only on during the call
    info = fast.cache_info()
    assert info.compiles == 3 and info.graphs == 2 and info.failed == 0  # 64 compiled once, reused
    assert [shape[-1] for shape, _ in fast.compiled_shapes()] == [64, 56]  # 48 was the least recently used
    fast(torch.randn(1, 3, 56, 56))
    assert fast.cache_info().compiles == 3
    for clone in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
        assert clone.compiled_shapes() == [] and clone.cache_info().compiles == 0
        with torch.no_grad():
            assert_close(clone(x), model(x))


@needs_graph
def test_a_failed_compile_warns_once_and_that_shape_runs_eagerly(monkeypatch, caplog):
    model = trained_like(width=0.35)
    x = torch.randn(1, 3, 32, 32)

    def broken(self, x):
        raise RuntimeError("no oneDNN Graph for this op")

    monkeypatch.setattr(CompiledSegment, "trace", broken)
    fast = mobilenetv2.for_inference(model)
    with caplog.at_level(logging.WARNING, logger="mobilenetv2.infer"), torch.no_grad():
        for _ in range(3):
            assert_close(fast(x), model(x))
    assert caplog.text.count("that shape runs eagerly") == 1
    assert fast.cache_info().failed == 1 and fast.compiled_ops()  # the configuration did not change
    with pytest.raises(RuntimeError, match="no oneDNN Graph"):
        mobilenetv2.for_inference(model, engine="graph")(x)

    def bug(self, x):
        raise TypeError("a bug, not a compile failure")

    monkeypatch.setattr(CompiledSegment, "trace", bug)
    with pytest.raises(TypeError, match="a bug"):
        mobilenetv2.for_inference(model)(x)
