"""`mobilenetv2 paper table3|table4|figure1|figure5|figure6|all|table4-litert`: the paper's tables and figures,
reproduced (table4-litert: Table 4's CPU column in LiteRT, needs mobilenetv2[tflite]; not part of all)."""

import argparse

ITEMS = ("table3", "table4", "figure1", "figure5", "figure6", "all", "table4-litert")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="reproduce the paper's tables and figures (markdown, CSV, PNG)")
    p.add_argument("item", choices=ITEMS, help="what to build")
    p.add_argument("--out", default="paper", help="output folder (default ./paper)")
    p.add_argument(
        "--repeats", type=int, default=20, help="timed runs per latency (table4, table4-litert; figure5 uses 1/4)"
    )
    g = p.add_argument_group("figure6 ablation budget (same for every variant)")
    g.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4)")
    g.add_argument("--seeds", type=int, default=2, help="seeds per variant (default 2)")
    g.add_argument("--width", type=float, default=0.35, help="MobileNetV2 width (default 0.35)")
    g.add_argument("--resolution", type=int, default=32, help="input size (default 32)")
    g.add_argument("--dataset", default="digits", help="built-in dataset (default digits)")
    g.add_argument("--data", help="ImageFolder with train/ and val/ (instead of --dataset)")
    g.add_argument("--runs", help="folder for the training runs (default OUT/figure6_runs)")
    g.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each (default 2)")
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.paper import Budget, reproduce

    budget = Budget(
        epochs=args.epochs,
        seeds=args.seeds,
        width=args.width,
        resolution=args.resolution,
        dataset=args.dataset,
        data=args.data,
        jobs=args.jobs,
    )
    print(reproduce(args.item, out_dir=args.out, repeats=args.repeats, budget=budget, runs_dir=args.runs))
    return 0
