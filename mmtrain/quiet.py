"""Keep a command's output to what a user acts on: no third-party INFO lines, adverts, or warnings that do not apply.

Called once a command's config is composed. Warnings are filtered by message, so a warning that does apply (say, a
data loader with too few workers on a real dataset) still shows.
"""

from __future__ import annotations

import logging
import warnings

# Loggers whose INFO lines (device banners, "max_cache_size" notes, adverts) are noise in our output.
THIRD_PARTY = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "lightning.pytorch",
    "litdata",
    "timm",
    "httpx",
    "matplotlib",
)
# Warnings that do not apply to how mmtrain runs Lightning (regular expressions, matched at the message start).
IGNORED_WARNINGS = (
    # bounded by steps, an epoch of a small store is shorter than log_every_n_steps; logging still happens by step
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # we pass num_workers from the config on purpose; the store loader is fast in process
    r".*does not have many workers which may be a bottleneck",
    r".*Consider setting `persistent_workers=True`",
    # the checkpoint folder is ours and is reused by resume on purpose
    r"Checkpoint directory .* exists and is not empty",
    # lightning's hint to install its cloud checkpoint package
    r".*litmodels",
    # a deprecation inside Lightning itself, nothing a user can change
    r".*isinstance\(treespec, LeafSpec\)",
    # the store's datasets know their length; the warning is about worker sharding, which LitData handles
    r"Your `IterableDataset` has `__len__` defined",
)
KEEP_INFO = ("pytorch_lightning.callbacks.model_summary", "lightning.pytorch.callbacks.model_summary")


class _ThirdPartyInfo(logging.Filter):
    """Drops INFO lines of third-party loggers and their adverts, whatever level those loggers set themselves.

    Lightning sets its own loggers to INFO when it is imported (after this runs), so levels alone cannot do it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "💡" in record.getMessage() or "litmodels" in record.getMessage():
            return False
        if record.levelno >= logging.WARNING or record.name.startswith(KEEP_INFO):
            return True
        return record.name.split(".")[0] not in THIRD_PARTY


def quiet_third_parties() -> None:
    """Filter third-party INFO lines out of every root handler and drop the warnings listed above."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ThirdPartyInfo) for f in handler.filters):
            handler.addFilter(_ThirdPartyInfo())
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
