"""``mmtrain eval results=... references=...`` without Hydra: the same options, files and messages, faster to start.

Scoring a results file needs no model, so composing the config through Hydra (and importing it) is most of what a
small run pays. When every override is a plain ``key=value`` of the file-mode options below, the config is built
from ``eval.yaml`` and ``decoding/greedy.yaml`` directly, and the run writes what the Hydra run writes:
``metrics.json``, ``per_image.jsonl``, ``report.md``, ``run_manifest.json``, ``config.yaml``, ``.hydra/config.yaml``
and ``.hydra/overrides.yaml`` (not Hydra's own ``.hydra/hydra.yaml``). Anything else (``ckpt=``, ``--help``, ``-m``,
``+key``, quoting, interpolation, a value of the wrong type) goes through Hydra as before.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from mmtrain.errors import EXIT_OK, UserError

FILE_KEYS = {"results", "references", "out", "allow_partial", "compare", "meteor", "spice_jar", "bootstrap", "debug"}
_PLAIN = set("'\"[]{}$,\\ ")
_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def _parse(overrides: list[str]) -> dict | None:
    """The overrides as values, or None when one of them needs Hydra."""
    values = {}
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or key not in FILE_KEYS or key in values or _PLAIN & set(text):
            return None
        values[key] = _value(text)
    types_ok = all(isinstance(values.get(k, False), bool) for k in ("allow_partial", "debug"))
    types_ok &= type(values.get("bootstrap", 0)) is int
    types_ok &= all(isinstance(values.get(k), str | None) for k in ("results", "references", "out", "compare"))
    return values if values.get("results") and types_ok else None


def _config(values: dict) -> dict:
    import yaml

    base = yaml.safe_load((_CONFIG_DIR / "eval.yaml").read_text(encoding="utf-8"))
    config = {"decoding": yaml.safe_load((_CONFIG_DIR / "decoding" / "greedy.yaml").read_text(encoding="utf-8"))}
    config.update({k: v for k, v in base.items() if k not in ("defaults", "hydra")})
    config.update(values)
    if "out" not in values:
        config["out"] = datetime.now().strftime("runs/eval/%Y-%m-%d_%H-%M-%S")
    return config


def _write_run_files(out: Path, config: dict, overrides: list[str]) -> None:
    import yaml

    from mmtrain.io import write_text

    text = yaml.safe_dump(config, sort_keys=False)
    write_text(out / "config.yaml", text)
    write_text(out / ".hydra" / "config.yaml", text)
    write_text(out / ".hydra" / "overrides.yaml", yaml.safe_dump(list(overrides)))


def _log_to(path: Path) -> None:
    """Log records to the console and to ``RUN/eval.log``, in Hydra's format, as a Hydra run does."""
    import logging

    form = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(path, encoding="utf-8")):
        handler.setFormatter(form)
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def fast_eval(overrides: list[str]) -> int | None:
    """Run ``eval`` on a results file without Hydra; None when the overrides need Hydra's composition."""
    values = _parse(overrides)
    if values is None:
        return None
    config = _config(values)
    out = Path(config["out"])
    try:
        out.mkdir(parents=True, exist_ok=True)
        _log_to(out / "eval.log")
        _write_run_files(out, config, overrides)
        metrics = score_results(config)
    except UserError as err:
        if config.get("debug"):  # the full traceback, then the same exit code
            import traceback

            traceback.print_exc()
            return err.exit_code
        from mmtrain.commands import ERROR_LOG
        from mmtrain.io import write_text

        line = f"mmtrain eval: {' '.join(f'error: {err}'.split())}"
        print(line, file=sys.stderr)
        if out.is_dir():
            write_text(out / ERROR_LOG, line + "\n")
        return err.exit_code
    print(json.dumps({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}))
    return EXIT_OK


def score_results(config: dict) -> dict:
    """Score ``config["results"]`` against ``config["references"]`` into ``config["out"]``, with the run manifest."""
    from mmtrain.io import write_json
    from mmtrain.metrics.evaluate import evaluate_files
    from mmtrain.runinfo import write_run_manifest

    if config.get("ckpt"):
        raise UserError("give either ckpt=... (caption and score a split) or results=... references=..., not both")
    if not config.get("references"):
        raise UserError("results=... needs references=COCO_CAPTIONS_JSON")
    out = Path(config["out"])
    metrics = evaluate_files(
        Path(config["results"]),
        Path(config["references"]),
        out,
        allow_partial=bool(config["allow_partial"]),
        compare=config["compare"],
        meteor=config["meteor"],
        spice_jar=config["spice_jar"],
        bootstrap=int(config["bootstrap"]),
    )
    extra = {"command": "eval", "ckpt": None, "results": config["results"], "references": config["references"]}
    metrics["stamp"] = write_run_manifest(out, config, store=None, store_url=None, extra=extra)["stamp"]
    write_json(out / "metrics.json", metrics)
    return metrics
