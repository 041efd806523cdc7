"""`mobilenetv2 COMMAND ...`: one module per subcommand in this package, each a thin call into the library.

A command module defines `add_parser(subparsers)` and `run(args) -> int`. Bad input (ValueError, missing
files, UserError) and a full or read-only disk become one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys

EXIT_USAGE = 2
# OSErrors that say something about the machine, not the program: reported in one line like bad input.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# OSErrors about the paths a user gave.
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError, FileExistsError)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the command and what is wrong) and exit 2, not the usage block."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from mobilenetv2 import __version__

    parser = Parser(
        prog="mobilenetv2",
        description="MobileNetV2 (Sandler et al., CVPR 2018): models, analysis, weights, training, inference.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenetv2 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    out = getattr(args, "out", None)
    if getattr(args, "out_folder", False) and out and os.path.exists(out) and not os.path.isdir(out):
        print(f"mobilenetv2 {args.command}: error: --out {out} is an existing file, not a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except (MemoryError, RuntimeError) as exc:
        message = out_of_memory(exc, args)
        if message is None:
            raise
        print(f"mobilenetv2 {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError) as exc:
        if isinstance(exc, OSError) and not (isinstance(exc, USER_OS_ERRORS) or exc.errno in ENVIRONMENT_ERRNOS):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, FileExistsError) and exc.filename and not os.path.isdir(exc.filename):
            message = f"{exc.filename} exists and is not a folder (an output folder was expected there)"
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{message}: {exc.filename}"
        print(f"mobilenetv2 {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


OOM_MARKERS = ("DefaultCPUAllocator: can't allocate memory", "out of memory", "OutOfMemoryError")


def out_of_memory(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an allocation that did not fit (naming its size and the sizes asked for); None for any
    other RuntimeError, which is a bug and keeps its traceback."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and not any(m in text for m in OOM_MARKERS):
        return None
    found = re.search(r"allocate ([0-9.]+) ?(bytes|[KMGT]i?B)", text)
    if found and found.group(2) == "bytes":
        size = f"{int(found.group(1)) / 2**30:.2f} GiB"
    else:
        size = f"{found.group(1)} {found.group(2)}" if found else "an allocation"
    asked = []
    for name in ("batch_size", "resolution", "image_size"):
        value = getattr(args, name, None)
        if value is not None:
            value = "x".join(map(str, value)) if isinstance(value, tuple) else value  # (`list` here is cli.list)
            asked.append(f"--{name.replace('_', '-')} {value}")
    sizes = f" with {', '.join(asked)}" if asked else ""
    return f"out of memory: {size} did not fit{sizes}; try a smaller batch size or resolution"
