"""for_inference: the BN-folded channels_last fast path and Sec. 5.1's split schedule give the plain model's outputs."""

import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.infer.graph import graph_available
from mobilenetv2.infer.split import channel_slices

ATOL = 1e-4
# Both engines run the same folded ops: one op at a time from Python, or compiled by oneDNN Graph.
ENGINES = ("eager", "graph") if graph_available() else ("eager",)


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


def assert_same_outputs(model: torch.nn.Module, x: torch.Tensor, splits: int) -> None:
    with torch.no_grad():
        expected = model(x)
    assert expected.abs().max() > 0.1  # the comparison below is not between near-zero logits
    for schedule in ("peak", "uniform") if splits > 1 else ("peak",):  # uniform: every op runs split
        for engine in ENGINES if model.shortcut != "expansion" else ("eager",):
            fast = mobilenetv2.for_inference(model, splits=splits, schedule=schedule, engine=engine)
            assert_close(fast(x), expected)


@pytest.mark.parametrize("name", mobilenetv2.list_models("mobilenet_v2*"))
def test_every_registered_variant_matches_the_plain_model(name):
    # splits=3 runs the same loop as splits=1, over three slices; the options test below covers both.
    assert_same_outputs(trained_like(name, num_classes=10), torch.randn(2, 3, 32, 32), splits=3)


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
    # An odd, non-square size exercises TF 'SAME' padding's uneven borders.
    assert_same_outputs(trained_like(**options), torch.randn(2, in_channels, 45, 37), splits)


def test_expansion_shortcut_runs_unsplit_and_refuses_splits():
    model = trained_like(width=0.35, shortcut="expansion")
    assert_same_outputs(model, torch.randn(1, 3, 64, 64), splits=1)
    with pytest.raises(ValueError, match="shortcut='expansion'.*splits"):
        mobilenetv2.for_inference(model, splits=2)


@pytest.mark.parametrize("splits", [1, 4])
def test_contiguous_and_channels_last_inputs_agree_and_are_not_modified(splits):
    model = trained_like(width=0.35)
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    copy = x.clone()
    fast = mobilenetv2.for_inference(model, splits=splits)
    assert_close(fast(x), fast(x_cl))
    assert torch.equal(x, copy) and torch.equal(x_cl, copy)


def test_the_original_model_is_untouched_and_the_fast_one_is_eval_only():
    model = trained_like(width=0.35).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = mobilenetv2.for_inference(model, splits=2)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not fast.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    with pytest.raises(RuntimeError, match="eval-only"):
        fast.train()
    out = fast(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and not out.requires_grad


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_splits_are_refused(bad):
    with pytest.raises(ValueError, match="splits"):
        mobilenetv2.for_inference(mobilenetv2.create_model("mobilenet_v2_035"), splits=bad)


def test_other_architectures_are_refused_with_a_message():
    class NotMobileNet(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="MobileNetV2"):
        mobilenetv2.for_inference(NotMobileNet())


@pytest.mark.parametrize("channels, splits", [(96, 5), (32, 3), (20, 7), (3, 5), (1280, 4)])
def test_channel_slices_cover_every_channel_once_in_near_equal_groups(channels, splits):
    slices = channel_slices(channels, splits)
    assert [c for a, b in slices for c in range(a, b)] == list(range(channels))
    sizes = [b - a for a, b in slices]
    assert len(slices) == min(splits, channels) and max(sizes) - min(sizes) <= 1


def test_schedules_give_the_same_outputs_and_bad_schedules_are_refused():
    model = trained_like("mobilenet_v2_050", num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    for engine in ENGINES:
        fast = [mobilenetv2.for_inference(model, splits=4, schedule=s, engine=engine) for s in ("peak", "uniform")]
        outputs = [f(x) for f in fast]
        if engine == "eager":  # the same kernels over other slices: only the summation order differs
            torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-5)
        else:  # oneDNN Graph picks kernels and layouts per slice width: held to the fast path's own bound
            assert_close(outputs[0], outputs[1])
    with pytest.raises(ValueError, match="schedule must be one of peak, uniform"):
        mobilenetv2.for_inference(model, splits=2, schedule="greedy")


@pytest.mark.skipif("graph" not in ENGINES, reason="this PyTorch has no oneDNN Graph")
def test_graph_engine_is_the_unsplit_default_compiles_per_shape_and_leaves_torchscript_as_it_was(monkeypatch):
    import copy
    import pickle

    trims = []
    monkeypatch.setattr("mobilenetv2.infer.graph.trim_heap", lambda: trims.append(1))

    model = trained_like(width=0.35)
    fast = mobilenetv2.for_inference(model, splits=2, engine="graph")
    x = torch.randn(2, 3, 64, 64)
    assert mobilenetv2.for_inference(model).uses_graph(x)
    hybrid = mobilenetv2.for_inference(model, splits=2)  # split ops eager (their memory), the rest compiled
    assert hybrid.graph_start(x) == 1 + max(i for i, s in enumerate(hybrid.op_splits()) if s > 1)
    assert mobilenetv2.for_inference(model, splits=2, schedule="uniform").graph_start(x) is None  # head split
    before = torch._C._jit_llga_enabled()
    for size in (64, 64, 64, 48):  # the graph compiles over the first calls of each shape
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            assert_close(fast(x), model(x))
    assert torch._C._jit_llga_enabled() == before  # the global switch is only on during the call
    assert len(fast.graphs.graphs) == 2
    assert len(trims) == 1  # the heap is trimmed once a shape has compiled (64: 3 calls, 48: only 1 so far)
    for clone in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
        assert clone.graphs.graphs == {}
        with torch.no_grad():
            assert_close(clone(x), model(x))
    auto = mobilenetv2.for_inference(model)
    auto(x)
    double = auto.double()  # with engine="auto", other dtypes run the eager ops
    assert double.graphs.graphs == {} and not double.uses_graph(x.double())
    with torch.no_grad():
        assert_close(double(x.double()).float(), model(x))


def test_engines_are_checked():
    model = trained_like(width=0.35)
    with pytest.raises(ValueError, match="engine must be one of auto, graph, eager"):
        mobilenetv2.for_inference(model, engine="jit")
    if "graph" in ENGINES:
        fast = mobilenetv2.for_inference(model, engine="graph")
        with pytest.raises(ValueError, match="float32 CPU inputs only"):
            fast(torch.randn(1, 3, 32, 32, dtype=torch.float64))
        with pytest.raises(ValueError, match="shortcut='expansion'"):
            mobilenetv2.for_inference(trained_like(width=0.35, shortcut="expansion"), engine="graph")
    assert mobilenetv2.for_inference(trained_like(width=0.35, shortcut="expansion")).engine == "eager"


def test_auto_engine_falls_back_to_eager_when_the_graph_fails(monkeypatch, caplog):
    model = trained_like(width=0.35)
    x = torch.randn(1, 3, 32, 32)

    def broken(fast, x, start=0):
        raise RuntimeError("no oneDNN Graph for this op")

    monkeypatch.setattr("mobilenetv2.infer.graph.GraphEngine.trace", staticmethod(broken))
    monkeypatch.setattr("mobilenetv2.infer.graph.GraphEngine.usable", lambda self, x: True)
    fast = mobilenetv2.for_inference(model)
    with torch.no_grad():
        assert_close(fast(x), model(x))
    assert fast.engine == "eager" and "graph engine failed" in caplog.text
    if "graph" in ENGINES:
        with pytest.raises(RuntimeError, match="no oneDNN Graph"):
            mobilenetv2.for_inference(model, engine="graph")(x)
