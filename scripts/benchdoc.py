"""Write one benchmark's section of ``docs/benchmarks.md`` from its JSON result.

Every benchmark script ends with ``write_section(name, title, result, rows)``. The page is made of sections between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers; a run replaces its own section and leaves the others,
so ``make bench`` leaves the latest run of each benchmark with its date, machine and targets. The raw JSON of the
run is kept beside the page in ``docs/benchmarks/NAME.json``. Nothing here is typed by hand.

Usage inside a script::

    from benchdoc import write_section
    write_section("eval", "Metrics against pycocoevalcap", result,
                  [("coco_caption_scores in process", "0.7 s", "7.1 s", "10.1x", ">= 10x", True)])
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
JSON_DIR = ROOT / "docs" / "benchmarks"
HEADER = """# Benchmarks

Written by the benchmark scripts from their JSON (`make bench`, or one `make bench-NAME`); do not edit by hand.
Each section is the latest run of one script, with its date and machine. A row's ratio is measured against its peer
in the same run; `met` compares it with the target.
"""
ROW_HEADERS = ("what", "mmtrain", "peer", "ratio", "target", "met")


def machine() -> str:
    """A short description of this machine: CPU model, cores, memory, GPU."""
    try:
        from mmtrain.runinfo import hardware

        hw = hardware()
    except Exception:  # the page must still be written when mmtrain cannot be imported
        hw = {}
    cpu = hw.get("cpu") or platform.processor() or platform.machine()
    parts = [f"{cpu}", f"{hw.get('cpu_usable') or os.cpu_count()} cores"]
    if hw.get("memory_gib"):
        parts.append(f"{hw['memory_gib']:.0f} GiB")
    devices = (hw.get("gpus") or {}).get("devices")
    parts.append(f"GPU: {', '.join(devices)}" if devices else "no GPU")
    return ", ".join(str(p) for p in parts)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub table; booleans print as yes/no, None as a dash."""

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "**no**"
        return "–" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_section(
    name: str,
    title: str,
    result: dict[str, Any],
    rows: Iterable[Sequence[Any]],
    *,
    headers: Sequence[str] = ROW_HEADERS,
    notes: str = "",
    doc: Path = DOC,
    stamp: str | None = None,
) -> None:
    """Replace (or append) the section ``name`` of the benchmarks page and keep the run's JSON beside it.

    Args:
        name: section key, e.g. ``"eval"``; also the JSON file name.
        title: heading of the section.
        result: the JSON the script printed.
        rows: table rows, by default ``(what, mmtrain, peer, ratio, target, met)``.
        headers: column names when the rows have another shape.
        notes: a paragraph under the table (how it was measured, what is not met and by how much).
        doc: the page to write, for tests.
        stamp: when the run was made (a section written again from a past run's JSON); default: now.
    """
    stamp = stamp or _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [
        f"<!-- bench:{name} -->",
        f"## {title}",
        "",
        f"Run {stamp} on {machine()} by `scripts/bench_{name}.py`.",
        "",
        markdown_table(headers, rows),
    ]
    if notes:
        body += ["", notes.strip()]
    body += [f"<!-- /bench:{name} -->"]
    section = "\n".join(body)
    text = doc.read_text(encoding="utf-8") if doc.is_file() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    _atomic_write(doc, text)
    if doc == DOC:
        _atomic_write(JSON_DIR / f"{name}.json", json.dumps(result, indent=2, default=str) + "\n")
