"""`mobilenetv2 list [PATTERN]`: registered model names."""

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models (shell-style pattern)")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.registry import list_models

    for name in list_models(args.pattern):
        print(name)
    return 0
