"""`mobilenetv2 convert SRC --from torchvision|timm|keras|tf-detection`: other libraries' weights -> our file."""

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert torchvision / timm / Keras MobileNetV2 weights or a TF OD API SSDLite graph to .safetensors",
        description="Convert MobileNetV2 weights from torchvision (.pth), timm (.pth, .safetensors) or Keras "
        "(.h5, .weights.h5), or a TF Object Detection API SSDLite-MobileNetV2 frozen_inference_graph.pb "
        "(tf-detection, read without TensorFlow) to ssdlite_mobilenet_v2. The width is read from the tensor shapes; "
        "the result is checked against the source library when it is installed. Pickles load with "
        "torch.load(weights_only=True): code in them never runs.",
    )
    p.add_argument("src", metavar="SRC", help="the weights file to convert")
    p.add_argument("--from", dest="source", required=True, choices=["torchvision", "timm", "keras", "tf-detection"])
    p.add_argument("--out", help="output .safetensors file (default: SRC with the suffix .safetensors)")
    p.set_defaults(func=run)


def default_out(src: Path) -> Path:
    name = src.name.removesuffix(".weights.h5") if src.name.endswith(".weights.h5") else src.stem
    out = src.with_name(f"{name}.safetensors")
    return out if out != src else src.with_name(f"{name}.mobilenetv2.safetensors")


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.meta import meta_of
    from mobilenetv2.weights import convert, save

    src = Path(args.src)
    out = Path(args.out) if args.out else default_out(src)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {out}")
    if out.resolve() == src.resolve() or (out.exists() and src.exists() and out.samefile(src)):
        raise ValueError(f"--out {out} is the input file {src}; choose another output path")
    model = convert(src, args.source)
    save(model, out)
    meta = meta_of(model)
    check = meta.provenance["self_check"]
    diff = "not compared" if check["max_abs_diff"] is None else f"{check['max_abs_diff']:.3g}"
    print(f"converted {src} ({args.source}, {meta.provenance['layout']})")
    print(f"  architecture  {meta.architecture} (width {model.width}, {model.num_classes} classes)")
    pre = meta.preprocessing
    print(f"  preprocessing {pre.input_size[0]}x{pre.input_size[1]}, mean {pre.mean}, std {pre.std}")
    graph = meta.provenance.get("graph")
    if graph:
        post = graph["postprocessing"]
        print(
            f"  detection     boxes per location {[len(a) for a in graph['anchors']]}, box coder "
            f"{graph['box_coder_scales']}, {post['score']} scores, NMS IoU {post['iou_threshold']:.3g}, "
            f"{post['max_detections']} detections"
        )
    for note in meta.provenance["notes"]:
        print(f"  note          {note}")
    print(
        f"  self-check    {check['compared']} vs {check['reference'] or 'nothing (library not installed)'}: "
        f"max abs diff {diff}"
    )
    print(f"wrote {out}")
    return 0
