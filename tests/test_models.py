"""One suite over every registered model: a new variant is tested by registering it."""

import copy
import io

import pytest
import torch

from mobilenetv2 import create_model, list_models
from mobilenetv2.registry import task_of

# Classifiers; detectors and segmenters have their own suites (their outputs are not logits).
NAMES = [n for n in list_models() if task_of(n) == "classification"]


def build(name: str, num_classes: int = 10) -> torch.nn.Module:
    return create_model(name, num_classes=num_classes)


@pytest.fixture(scope="module", params=NAMES)
def named_model(request):
    return request.param, build(request.param)


def test_registry_is_not_empty():
    assert "mobilenet_v2" in NAMES
    assert {f"mobilenet_v2_{s}" for s in ("035", "050", "075", "100", "130", "140")} <= set(NAMES)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (64, 96)])
def test_forward_shape(named_model, size):
    name, model = named_model
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 10), name
    assert torch.isfinite(out).all()


def test_backward_reaches_every_parameter(named_model):
    name, model = named_model
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(torch.randn(2, 3, 64, 64))
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: no gradient for {missing[:5]}"


def test_eval_is_deterministic(named_model):
    _, model = named_model
    model.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_channels_last_equals_contiguous(named_model):
    _, model = named_model
    model.eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        ref = model(x)
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, rtol=1e-5, atol=1e-5)


def test_torchscript_round_trip(named_model):
    _, model = named_model
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
        # Plain interpretation: the graph optimizer's warm-up runs cost seconds and prove nothing here.
        with torch.jit.optimized_execution(False):
            torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)


def test_224_forward_of_the_reference_widths():
    for name in ("mobilenet_v2_100", "mobilenet_v2_035"):
        model = create_model(name).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_torch_export_round_trip():
    model = create_model("mobilenet_v2_050", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    program = torch.export.export(model, (x,))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(buf).module()(x), model(x), rtol=0, atol=1e-6)
