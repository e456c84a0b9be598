"""Command-line overrides checked before a command runs: wrong keys get "did you mean", wrong types name the key.

Hydra composes the config; our YAML files carry no schema, so a value of the wrong type (``trainer.max_steps=ten``)
would only fail deep inside a command. The default value of each key stands in for its schema: an override must be
of the same kind (integer, number, boolean, text, list, mapping) as the value it replaces, or null.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from mmtrain.errors import UserError

KINDS = {bool: "a boolean (true or false)", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}
MAX_SUGGESTIONS = 3
# Keys whose default is null but whose value, when given, has a kind.
NULLABLE = {"ema.decay": float, "optim.encoder_lr": float, "trainer.check_val_every_n_epoch": int}


def _kind(value: Any) -> type | None:
    """The kind a default value stands for; None when any value is accepted (text, null)."""
    for kind in (bool, int, float):  # bool before int: True is an int
        if isinstance(value, kind):
            return kind
    if isinstance(value, (list, tuple)):
        return list
    if isinstance(value, dict):
        return dict
    return None


def _fits(kind: type, value: Any) -> bool:
    if value is None:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):  # an integer key may take a fraction (Lightning's val_check_interval=0.5)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, (list, tuple)) if kind is list else isinstance(value, dict)


def config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain config container, parents included."""
    keys = []
    if isinstance(node, dict):
        for name, child in node.items():
            key = f"{prefix}{name}"
            keys.append(key)
            keys += config_keys(child, key + ".")
    return keys


def suggest(bad: str, keys: list[str]) -> list[str]:
    """The keys nearest to ``bad``: by the whole dotted key, and by its last part for a key given without a group."""

    def score(key: str) -> float:
        whole = difflib.SequenceMatcher(None, bad, key).ratio()
        leaf = difflib.SequenceMatcher(None, bad.rsplit(".", 1)[-1], key.rsplit(".", 1)[-1]).ratio()
        same_parent = bad.rsplit(".", 1)[0] == key.rsplit(".", 1)[0] if "." in bad else True
        return max(whole, leaf - (0.0 if same_parent else 0.1))

    ranked = sorted(((score(key), key) for key in keys if key != bad), key=lambda pair: (-pair[0], pair[1]))
    best = ranked[0][0] if ranked else 0.0
    return [key for value, key in ranked[:MAX_SUGGESTIONS] if value >= max(0.75, best - 0.05)]


def _defaults(command: str, overrides: list[str]) -> dict:
    """The command's config composed with only ``overrides`` (group choices), as plain resolved values."""
    from hydra import compose
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose(config_name=command, overrides=overrides), resolve=False)


def _select(container: dict, key: str) -> tuple[bool, Any]:
    node: Any = container
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_override_types(command: str, cfg) -> None:
    """Raise a UserError naming the first value override whose type differs from that key's default."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    given = list(hydra_cfg.overrides.task)
    choices = set(hydra_cfg.runtime.choices)
    parsed = OverridesParser.create().parse_overrides(given)
    values = [o for o in parsed if not o.is_delete() and o.key_or_group not in choices and "@" not in o.key_or_group]
    if not values:
        return
    groups = [text for text, o in zip(given, parsed, strict=True) if o.key_or_group in choices]
    defaults = _defaults(command, groups)
    problem = type_error(values, defaults, OmegaConf.to_container(cfg, resolve=False))
    if problem:
        raise UserError(problem)


def type_error(values: list, defaults: dict, config: dict) -> str | None:
    """The message for the first of the parsed ``values`` overrides whose value in ``config`` is not of the kind of
    its value in ``defaults`` (the config composed without them); None when all fit."""
    for override in values:
        found, default = _select(defaults, override.key_or_group)
        kind = _kind(_resolved(defaults, override.key_or_group, default)) if found else None
        kind = kind or NULLABLE.get(override.key_or_group)
        _, value = _select(config, override.key_or_group)
        if kind is not None and not _fits(kind, _resolved(config, override.key_or_group, value)):
            shown = override.input_line.split("=", 1)[1] if override.input_line else value
            return f"{override.key_or_group}={shown}: expected {KINDS[kind]} (default: {_yaml(default)})"
    return None


def _resolved(container: dict, key: str, value: Any) -> Any:
    """A ``${...}`` interpolation's value, read through OmegaConf; other values as they are."""
    if not (isinstance(value, str) and "${" in value):
        return value
    from omegaconf import OmegaConf

    try:
        return OmegaConf.select(OmegaConf.create(container), key)
    except Exception:  # noqa: BLE001 - an interpolation that cannot resolve here (e.g. ${now:}) is not checked
        return None


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def one_line(text: str, limit: int = 400) -> str:
    return " ".join(str(text).split())[:limit]


def explain_composition(command: str, overrides: list[str], err: Exception) -> str:
    """One line for a Hydra composition error; an unknown key gets the nearest existing keys."""
    text = str(err)
    match = re.search(r"Could not (?:override|delete from config) '([^']+)'", text)
    if match is None:
        match = re.search(r"Key '[^']+' is not in struct\s+full_key: (\S+)", text + " " + str(err.__cause__ or ""))
    if match is None:
        return one_line(re.split(r"\nSet the environment|\s*Config search path", text)[0])
    bad = match.group(1)
    keys = _known_keys(command, [o for o in overrides if not o.startswith(f"{bad}=")])
    hint = suggest(bad, keys)
    advice = f"did you mean {' or '.join(hint)}?" if hint else f"see `mmtrain {command} --cfg job` for the keys"
    return f"no key {bad} in the {command} config; {advice}"


def _known_keys(command: str, overrides: list[str]) -> list[str]:
    """The dotted keys of the command's config, composed with the other overrides when they compose."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from mmtrain.cli import CONFIG_DIR

    groups = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0] and not o.startswith(("+", "~"))]
    for attempt in (groups, []):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = compose(config_name=command, overrides=attempt)
            return config_keys(OmegaConf.to_container(cfg, resolve=False))
        except Exception:  # noqa: BLE001 - fall back to the defaults alone
            continue
        finally:
            GlobalHydra.instance().clear()
    return []
