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
from collections.abc import Sequence
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
    synsets: dict[str, str]  # a word's synonym set ids as the jar lists them, space-separated: parsed on look-up
    bases: dict[str, list[str]]


def _read_lexicon(jar: Path) -> Lexicon:
    with zipfile.ZipFile(jar) as archive:
        text = {name: archive.read(name).decode("utf-8") for name in _LEXICON_FILES}
    function_words = frozenset(text["function/english.words"].splitlines())
    lines = text["synonym/english.synsets"].split("\n")
    synsets = dict(zip(lines[0::2], lines[1::2], strict=False))  # a trailing line without its pair is left out
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
    cache = _cache_dir() / f"lexicon-v2-{_key(jar)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return Lexicon(frozenset(data["function_words"]), data["prefixes"], data["synsets"], data["bases"])
    lexicon = _read_lexicon(jar)
    data = {
        "function_words": sorted(lexicon.function_words),
        "prefixes": lexicon.prefixes,
        "synsets": lexicon.synsets,
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
    max_phrase: int | None = None  # the longest reference side, in words; None: measured from ``offsets``

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.vocab)}
        if self.max_phrase is None:
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
        longest = cache / "max_phrase.txt"  # saves reading every offset at each start
        max_phrase = int(longest.read_text()) if longest.is_file() else None
        table = PhraseTable((cache / "vocab.txt").read_text(encoding="utf-8").split("\n"), *arrays, max_phrase)
        if max_phrase is None:
            _atomic_write(longest, lambda stream: stream.write(str(table.max_phrase).encode()))
        return table
    table = _read_table(source)
    for name in _TABLE_ARRAYS:
        _atomic_write(cache / f"{name}.npy", lambda stream, name=name: np.save(stream, getattr(table, name)))
    _atomic_write(cache / "max_phrase.txt", lambda stream: stream.write(str(table.max_phrase).encode()))
    _atomic_write(cache / "vocab.txt", lambda stream: stream.write("\n".join(table.vocab).encode("utf-8")))
    return table


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenation of ``range(start, start + count)`` for each pair, as one array."""
    total = int(counts.sum())
    firsts = np.cumsum(counts) - counts
    return np.repeat(starts - firsts, counts) + np.arange(total)


def paraphrases_in(
    table: PhraseTable, sentences: Sequence[tuple[str, ...]]
) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each phrase of ``sentences`` that the table has on its reference side, to its paraphrases in the file's order.

    Every window of every sentence is hashed at once (numpy), so a corpus's hundred thousand n-grams cost a few
    array operations; only the windows the table has are turned back into words.
    """
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = [w for sentence in sentences for w in sentence]
    known = {w: table.index.get(w, -1) for w in set(words)}
    ids = np.fromiter((known[w] for w in words), dtype=np.int64, count=len(words))
    ends = np.repeat(np.cumsum(lengths), lengths)  # where each position's sentence ends
    starts = np.arange(len(words))
    keys = np.zeros(len(words), dtype=np.uint64)
    alive = np.ones(len(words), dtype=bool)
    found_keys, found_starts, found_lengths = [], [], []
    with np.errstate(over="ignore"):
        for length in range(1, table.max_phrase + 1):
            last = starts + length - 1
            alive &= last < ends
            alive[alive] = ids[last[alive]] >= 0
            if not alive.any():
                break
            keys[alive] = keys[alive] * _MULTIPLIER + (ids[last[alive]].astype(np.uint64) + np.uint64(1))
            found_keys.append(keys[alive])
            found_starts.append(starts[alive])
            found_lengths.append(np.full(int(alive.sum()), length))
    if not found_keys:
        return {}
    unique, first = np.unique(np.concatenate(found_keys), return_index=True)
    lo = np.searchsorted(table.keys, unique, side="left")
    hi = np.searchsorted(table.keys, unique, side="right")
    hit = np.flatnonzero(lo < hi)
    window_starts = np.concatenate(found_starts)[first[hit]].tolist()
    window_lengths = np.concatenate(found_lengths)[first[hit]].tolist()
    counts = hi[hit] - lo[hit]
    pairs = table.order[_ranges(lo[hit], counts)]  # every pair of every window found, in key order
    begin, middle, end = table.offsets[2 * pairs], table.offsets[2 * pairs + 1], table.offsets[2 * pairs + 2]
    flat = table.ids[_ranges(begin, end - begin)].tolist()  # both sides of every pair, read in one gather
    sides = np.stack([middle - begin, end - begin], axis=1).tolist()
    out: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    vocab, at, pair = table.vocab, 0, 0
    for start, length, count in zip(window_starts, window_lengths, counts.tolist(), strict=True):
        phrase_ids = [known[w] for w in words[start : start + length]]
        for split, size in sides[pair : pair + count]:
            if flat[at : at + split] == phrase_ids:  # a hash collision is not a match
                phrase = tuple(words[start : start + length])
                out.setdefault(phrase, []).append(tuple(vocab[i] for i in flat[at + split : at + size]))
            at += size
        pair += count
    return out
