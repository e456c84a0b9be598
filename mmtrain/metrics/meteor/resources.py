"""The data METEOR 1.5 matches with, read from the jar pycocoevalcap installs, and cached after the first read.

- function words (``function/english.words``): words that count with weight 1 - delta;
- nonbreaking prefixes (``nonbreaking/english.prefixes``) for the normalizer;
- WordNet synonym sets (``synonym/english.synsets``) and irregular forms (``synonym/english.exceptions``);
- the paraphrase table (``data/paraphrase-en.gz`` beside the jar): 5.3 million phrase pairs, kept as integer arrays
  in an ``.npz`` cache so that a run loads it in a fraction of a second and keeps only the pairs its words can use.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmtrain.metrics.meteor.normalize import parse_prefixes


def find_meteor_jar() -> Path | None:
    """The ``meteor-1.5.jar`` of the installed pycocoevalcap, without importing it; None if absent."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    jar = Path(next(iter(spec.submodule_search_locations))) / "meteor" / "meteor-1.5.jar"
    return jar if jar.is_file() else None


def resources_unavailable_reason() -> str | None:
    """Why the Python METEOR cannot load its data here, or None when it can."""
    jar = find_meteor_jar()
    if jar is None:
        return "needs the data of pycocoevalcap's meteor-1.5.jar; install pycocoevalcap (pip install 'mmtrain[dev]')"
    if not (jar.parent / "data" / "paraphrase-en.gz").is_file():
        return f"needs the paraphrase table data/paraphrase-en.gz beside {jar.name}"
    return None


def _cache_dir() -> Path:
    root = os.environ.get("MMTRAIN_CACHE") or Path.home() / ".cache" / "mmtrain"
    return Path(root) / "meteor"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


@dataclass
class Lexicon:
    """Function words, nonbreaking prefixes, synonym sets by word and the base forms of irregular words."""

    function_words: frozenset[str]
    prefixes: dict[str, int]
    synsets: dict[str, frozenset[int]]
    bases: dict[str, list[str]]


def _read_lexicon(jar: Path) -> Lexicon:
    with zipfile.ZipFile(jar) as archive:
        text = {name: archive.read(name).decode("utf-8") for name in _LEXICON_FILES}
    function_words = frozenset(text["function/english.words"].splitlines())
    lines = text["synonym/english.synsets"].split("\n")
    synsets = {lines[i]: frozenset(map(int, lines[i + 1].split())) for i in range(0, len(lines) - 1, 2)}
    lines = text["synonym/english.exceptions"].split("\n")
    bases: dict[str, list[str]] = {}
    for i in range(0, len(lines) - 1, 2):
        for form in lines[i + 1].split():
            bases.setdefault(form, []).append(lines[i])
    return Lexicon(function_words, parse_prefixes(text["nonbreaking/english.prefixes"]), synsets, bases)


_LEXICON_FILES = [
    "function/english.words",
    "nonbreaking/english.prefixes",
    "synonym/english.synsets",
    "synonym/english.exceptions",
]


def load_lexicon(jar: Path) -> Lexicon:
    """The jar's word lists, from the cache when it matches the jar."""
    cache = _cache_dir() / f"lexicon-{_key(jar)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return Lexicon(
            frozenset(data["function_words"]),
            data["prefixes"],
            {word: frozenset(ids) for word, ids in data["synsets"].items()},
            data["bases"],
        )
    lexicon = _read_lexicon(jar)
    data = {
        "function_words": sorted(lexicon.function_words),
        "prefixes": lexicon.prefixes,
        "synsets": {word: sorted(ids) for word, ids in lexicon.synsets.items()},
        "bases": lexicon.bases,
    }
    _atomic_write(cache, lambda stream: stream.write(json.dumps(data).encode("utf-8")))
    return lexicon


@dataclass
class PhraseTable:
    """The paraphrase pairs as word ids, indexed by a hash of their reference-side phrase.

    Phrase k's words are ``ids[offsets[k]:offsets[k + 1]]``; pair p is phrase ``2 p`` (reference side) and its
    paraphrase ``2 p + 1``, numbered in the file's order. ``keys`` holds the hash of each pair's reference side,
    sorted, and ``order`` the pairs in that order (file order among equal keys), so looking a phrase up is a binary
    search rather than a scan of 32 million word ids.
    """

    vocab: list[str]
    ids: np.ndarray
    offsets: np.ndarray
    keys: np.ndarray
    order: np.ndarray

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.vocab)}
        self.max_phrase = int(np.diff(self.offsets)[0::2].max()) if len(self.offsets) > 1 else 0


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def phrase_keys(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each phrase ``ids[start:start + length]`` (wrapping arithmetic; collisions are checked)."""
    keys = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for position in range(int(lengths.max()) if len(lengths) else 0):
            has = lengths > position
            words = ids[starts[has] + position].astype(np.uint64) + np.uint64(1)
            keys[has] = keys[has] * _MULTIPLIER + words
    return keys


def _read_table(path: Path) -> PhraseTable:
    vocab: dict[str, int] = {}
    ids: list[int] = []
    offsets = [0]
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for position, line in enumerate(stream):
            if position % 3 == 0:
                continue  # the pair's probability, unused by METEOR
            for word in line.split():
                ids.append(vocab.setdefault(word, len(vocab)))
            offsets.append(len(ids))
    return _indexed(list(vocab), np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64))


def _indexed(vocab: list[str], ids: np.ndarray, offsets: np.ndarray) -> PhraseTable:
    keys = phrase_keys(ids, offsets[0:-1:2], np.diff(offsets)[0::2])
    order = np.argsort(keys, kind="stable")
    return PhraseTable(vocab, ids, offsets, keys[order], order.astype(np.int64))


_TABLE_ARRAYS = ("ids", "offsets", "keys", "order")


def load_phrase_table(jar: Path) -> PhraseTable:
    """The paraphrase table beside the jar, memory-mapped from its cache folder (built on first use, about 1 min)."""
    source = jar.parent / "data" / "paraphrase-en.gz"
    cache = _cache_dir() / f"paraphrase-v3-{_key(source)}"
    if (cache / "vocab.txt").is_file():
        # plain ndarray views of the maps: the same pages, without np.memmap's cost on every slice
        arrays = [np.asarray(np.load(cache / f"{name}.npy", mmap_mode="r")) for name in _TABLE_ARRAYS]
        return PhraseTable((cache / "vocab.txt").read_text(encoding="utf-8").split("\n"), *arrays)
    table = _read_table(source)
    for name in _TABLE_ARRAYS:
        _atomic_write(cache / f"{name}.npy", lambda stream, name=name: np.save(stream, getattr(table, name)))
    _atomic_write(cache / "vocab.txt", lambda stream: stream.write("\n".join(table.vocab).encode("utf-8")))
    return table


def paraphrases_for(table: PhraseTable, phrases: set[tuple[str, ...]]) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each of ``phrases`` that the table has on its reference side, to its paraphrases in the file's order."""
    wanted = [p for p in phrases if 0 < len(p) <= table.max_phrase and all(w in table.index for w in p)]
    if not wanted:
        return {}
    flat = np.asarray([table.index[w] for p in wanted for w in p], dtype=np.int32)
    lengths = np.asarray([len(p) for p in wanted], dtype=np.int64)
    keys = phrase_keys(flat, np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    lo = np.searchsorted(table.keys, keys, side="left")
    hi = np.searchsorted(table.keys, keys, side="right")
    out: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    vocab, ids, offsets = table.vocab, table.ids, table.offsets
    for phrase, a, b in zip(wanted, lo.tolist(), hi.tolist(), strict=True):
        for pair in table.order[a:b].tolist():
            ref = tuple(vocab[i] for i in ids[offsets[2 * pair] : offsets[2 * pair + 1]].tolist())
            if ref == phrase:  # a hash collision is not a match
                par = ids[offsets[2 * pair + 1] : offsets[2 * pair + 2]].tolist()
                out.setdefault(phrase, []).append(tuple(vocab[i] for i in par))
    return out
