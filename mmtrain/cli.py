"""The ``mmtrain`` console script: ``mmtrain COMMAND [hydra overrides...]``.

The command picks a primary config (``configs/COMMAND.yaml``); everything after it is handed to Hydra, so
``--help``, ``--cfg job``, ``-m`` (multirun) and overrides behave as in any Hydra app. This module imports
nothing heavy: ``mmtrain --help`` and ``mmtrain eval results=...`` start without torch.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"


def _register_resolvers() -> None:
    """``${run_folder:...}`` (fit's default out) resolves wherever these configs are composed, tests included."""
    from mmtrain.training.resume import register_resolvers

    register_resolvers()


_register_resolvers()

# command -> (module with run(cfg), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "preprocess": ("mmtrain.commands.preprocess", "validate, clean and store a dataset (COCO, shapes, ...)"),
    "fit": ("mmtrain.commands.fit", "train a captioner on a preprocessed store"),
    "eval": ("mmtrain.commands.eval", "score a checkpoint on a split, or a COCO results file (BLEU, ROUGE-L, CIDEr)"),
    "caption": ("mmtrain.commands.caption", "caption image files or folders with a trained model"),
    "export": ("mmtrain.commands.export", "write a portable bundle (safetensors, config, tokenizer, card)"),
    "index": ("mmtrain.commands.index", "embed images into a searchable index (a model trained with xe_itc)"),
    "search": ("mmtrain.commands.search", "find the images of an index that best match a text or an image"),
}

USAGE = """usage: mmtrain COMMAND [OVERRIDES...] [--help] [--cfg job]

Train and evaluate image-text models. Everything after COMMAND is a Hydra override
(key=value, group=option, +new.key=value).

commands:
{commands}

Examples:
  mmtrain preprocess data=shapes out=runs/shapes-data
  mmtrain fit data.store=runs/shapes-data out=runs/fit1
  mmtrain eval ckpt=runs/fit1/checkpoints/best.ckpt split=test
  mmtrain eval results=results.json references=captions_val2014.json out=runs/eval1
  mmtrain caption ckpt=runs/fit1/checkpoints/best.ckpt inputs=[photos/]

`mmtrain COMMAND --help` shows that command's config groups and options.
Add debug=true to any command for full tracebacks.
"""


COMMON = {  # options every command has, documented once here rather than in each file
    "out": "the folder this run writes into",
    "debug": "true: full tracebacks instead of one-line errors",
    "seed": "random seed",
}
SKIPPED = ("defaults", "hydra", "model")  # Hydra's own sections, and fit's model (built from the groups)
OPTION = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")


def options(command: str) -> list[tuple[str, str, str]]:
    """``(key, default, comment)`` of each option in ``configs/COMMAND.yaml``, nested ones as ``parent.key``.

    Read from the YAML text, so that ``--help`` shows the comments that document each option.
    """
    found, parent = [], None
    for line in (CONFIG_DIR / f"{command}.yaml").read_text(encoding="utf-8").splitlines():
        match = OPTION.match(line)
        if match is None or match["key"].startswith("_"):
            continue
        key, value = match["key"], match["value"].strip()
        if not match["indent"]:
            parent = None if value else key
            if key not in SKIPPED and not value and match["comment"]:
                found.append((f"{key}.*", "", match["comment"]))
            if key not in SKIPPED and value:
                found.append((key, value, match["comment"] or COMMON.get(key, "")))
        elif parent and parent not in SKIPPED and len(match["indent"]) == 2 and value:
            found.append((f"{parent}.{key}", value, match["comment"] or ""))
    return found


def options_help(command: str) -> str:
    rows = options(command)
    width = max((len(key) + len(value) for key, value, _ in rows), default=0) + 3
    lines = [
        f"  {key}{'=' if value else ' '}{value:<{width - len(key)}}{comment}".rstrip() for key, value, comment in rows
    ]
    return f"== mmtrain {command} options (KEY=VALUE) ==\n" + "\n".join(lines) + "\n"


def options_markdown() -> str:
    """docs/options.md: every command's options with their defaults and comments, as ``--help`` shows them."""
    parts = [
        "# Options of every command",
        "",
        "Generated from the commented config files (`mmtrain/configs/COMMAND.yaml`); `mmtrain COMMAND --help` prints",
        "the same list, then the config groups and the composed config. Give an option as `KEY=VALUE` after the",
        "command; group options (`data=csv`, `encoder=vit_b16`, ...) and their keys are in [data.md](data.md),",
        "[training.md](training.md) and [your-data.md](your-data.md).",
    ]
    for command, (_, text) in COMMANDS.items():
        parts += ["", f"## mmtrain {command}", "", text, "", "| option | default | what it does |", "|---|---|---|"]
        for key, value, comment in options(command):
            cell = comment.replace("|", "\\|")
            parts.append(f"| `{key}` | `{value}` | {cell} |" if value else f"| `{key}` | | {cell} |")
    return "\n".join(parts) + "\n"


def write_options_page(path: Path = CONFIG_DIR.parents[1] / "docs" / "options.md") -> None:
    """Regenerate docs/options.md after an option is added or its comment changed."""
    from mmtrain.io import write_text

    write_text(path, options_markdown())


def usage() -> str:
    lines = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
    return USAGE.format(commands=lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command through Hydra; returns the process exit code.

    A reader that closes stdout early (``mmtrain fit --help | head -3``) ends the command quietly with 141.
    """
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a pipe closed after the last print fails here, inside the handler below
        return code
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """Point stdout at the null device, so that Python's own flush at exit prints no second error."""
    import os

    from mmtrain.errors import EXIT_BROKEN_PIPE

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a file (called in process with a captured stdout)
        pass
    return EXIT_BROKEN_PIPE


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from mmtrain import __version__

        print(f"mmtrain {__version__}")
        return 0
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        from mmtrain.errors import EXIT_UNKNOWN_COMMAND

        print(f"mmtrain: unknown command {command!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_UNKNOWN_COMMAND
    if "--help" in overrides or "-h" in overrides:
        print(options_help(command))  # then Hydra's groups and the composed config
    if command == "eval":  # scoring a results file: the same run without composing through Hydra
        from mmtrain.commands.eval_files import fast_eval

        code = fast_eval(overrides)
        if code is not None:
            return code
    from mmtrain.commands import run_hydra

    return run_hydra(command, COMMANDS[command][0], overrides)


if __name__ == "__main__":
    sys.exit(main())
