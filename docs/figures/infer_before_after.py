"""Before/after of the infer/ rebuild in one process: the old package (main at cc5fe20, copied to
/tmp/ab/mobilenetv2_old with its imports renamed) and the new one, timed in alternating blocks on the same
weights and input. Usage: PYTHONPATH=src python docs/figures/infer_before_after.py ROUNDS BLOCK [THREADS]"""

import statistics
import sys
import time

import torch

import mobilenetv2

sys.path.insert(0, "/tmp/ab")  # where the renamed copy of the old package lives
import mobilenetv2_old  # noqa: E402

rounds, block = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
torch.manual_seed(0)
new_model = mobilenetv2.create_model("mobilenet_v2_100").eval()
old_model = mobilenetv2_old.create_model("mobilenet_v2_100").eval()
old_model.load_state_dict(new_model.state_dict())
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
configs = {
    "fast": {},
    "fast-eager": {"engine": "eager"},
    "split-2": {"splits": 2},
    "split-5": {"splits": 5},
    "split-uniform-2": {"splits": 2, "schedule": "uniform"},
}
runs = {}
for name, kw in configs.items():
    runs[(name, "before")] = mobilenetv2_old.for_inference(old_model, **kw)
    runs[(name, "after")] = mobilenetv2.for_inference(new_model, **kw)
with torch.inference_mode():
    ref = new_model(x)
    for key, f in runs.items():
        for _ in range(3):  # the graphs compile over their first two calls
            out = f(x)
        assert (out - ref).abs().max() < 1e-3, key
    times = {key: [] for key in runs}
    for r in range(rounds):
        for key in list(runs) if r % 2 == 0 else list(reversed(runs)):
            for _ in range(block):
                start = time.perf_counter()
                runs[key](x)
                times[key].append((time.perf_counter() - start) * 1e3)
print(f"{'path':16} {'before ms (median / min)':>26} {'after ms (median / min)':>26}  after/before (median)")
for name in configs:
    b, a = times[(name, "before")], times[(name, "after")]
    mb, ma = statistics.median(b), statistics.median(a)
    print(f"{name:16} {mb:14.2f} / {min(b):8.2f} {ma:14.2f} / {min(a):8.2f}  {ma / mb:6.2f}")
