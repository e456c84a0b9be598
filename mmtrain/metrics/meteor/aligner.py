"""METEOR 1.5's alignment: candidate matches from four modules, then a beam search for the best one-to-one set.

Words of the hypothesis are "line 1" and words of the reference "line 2", as in the jar. Every possible match is
collected per reference position, module by module (exact, stem, synonym, paraphrase), in the jar's order; matches
that nothing else competes for are fixed at once, and a left-to-right beam search (40 paths) resolves the rest,
ranking paths by weighted matched words (exact 1, others 0.5, added into an integer as the jar does, so a lone
half-credit word adds nothing), then fewer chunks, then a smaller distance between matched positions. The order of
candidates and the jar's quirks (the distance is charged to the parent path) are kept: they decide ties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BEAM = 40
SEARCH_WEIGHTS = (1.0, 0.5, 0.5, 0.5)
EXACT, STEM, SYNONYM, PARAPHRASE = range(4)

# (start in line 2, length in line 2, start in line 1, length in line 1, module)
Match = tuple[int, int, int, int, int]


@dataclass
class Alignment:
    """The chosen matches and the counts METEOR's statistics need, per module: (content, function) words."""

    matches: list[Match | None]
    content1: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    content2: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    function1: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    function2: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    chunks: int = 0


@dataclass
class Matchers:
    """What the non-exact modules look up: a stemmer, synonym sets of a word, paraphrases of a phrase."""

    stem: Callable[[str], str]
    synsets: Callable[[str], frozenset[int]]
    paraphrases: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]]
    max_phrase: int
    max_paraphrase: int
    targets: frozenset[tuple[str, ...]]
    cache_grams: dict = field(default_factory=dict)
    cache_phrases: dict = field(default_factory=dict)


def _positions(items: Sequence) -> dict:
    where: dict = {}
    for i, item in enumerate(items):
        where.setdefault(item, []).append(i)
    return where


def _ngrams(words: Sequence[str], matchers: Matchers) -> dict[tuple[str, ...], list[int]]:
    """Where each n-gram of ``words`` that is some table phrase's paraphrase starts (cached per sentence)."""
    where = matchers.cache_grams.get(words)
    if where is not None:
        return where
    where = {}
    targets = matchers.targets
    for n in range(1, min(matchers.max_paraphrase, len(words)) + 1):
        for i in range(len(words) - n + 1):
            gram = tuple(words[i : i + n])
            if gram in targets:
                where.setdefault(gram, []).append(i)
    matchers.cache_grams[words] = where
    return where


def _table_phrases(line: Sequence[str], matchers: Matchers) -> list[tuple[int, int, dict]]:
    """(start, length, paraphrase ranks) of each phrase of ``line`` the table lists (cached per sentence)."""
    found = matchers.cache_phrases.get(line)
    if found is None:
        found = []
        for start in range(len(line)):
            for length in range(1, min(matchers.max_phrase, len(line) - start) + 1):
                ranks = matchers.paraphrases.get(tuple(line[start : start + length]))
                if ranks is not None:
                    found.append((start, length, ranks))
        matchers.cache_phrases[line] = found
    return found


def _phrase_matches(line: Sequence[str], other: Sequence[str], matchers: Matchers) -> list[tuple[int, int, int, int]]:
    """(start, length) in ``line`` of a table phrase and (start, length) in ``other`` of its paraphrase, in the jar's
    order: by start, then phrase length, then the paraphrase's rank in the table, then its position in ``other``."""
    found = []
    phrases = _table_phrases(line, matchers)
    if not phrases:
        return found
    grams = _ngrams(other, matchers)
    for start, length, ranks in phrases:
        if len(ranks) < len(grams):
            hits = [(r, at, len(par)) for par, rs in ranks.items() if par in grams for r in rs for at in grams[par]]
        else:
            hits = [(r, at, len(par)) for par, ats in grams.items() for r in ranks.get(par, ()) for at in ats]
        found.extend((start, length, at, k) for _, at, k in sorted(hits))
    return found


def _candidates(words1: Sequence[str], words2: Sequence[str], matchers: Matchers, modules: int) -> list[list[Match]]:
    found: list[list[Match]] = [[] for _ in words2]
    exact1 = _positions(words1)
    for j, w2 in enumerate(words2):
        found[j].extend((j, 1, i, 1, EXACT) for i in exact1.get(w2, ()))
    if modules == 1:
        return found
    stems1 = _positions([matchers.stem(w) for w in words1])
    for j, w2 in enumerate(words2):
        found[j].extend((j, 1, i, 1, STEM) for i in stems1.get(matchers.stem(w2), ()) if words1[i] != w2)
    by_set: dict[int, list[int]] = {}
    for i, w1 in enumerate(words1):
        for synset in matchers.synsets(w1):
            by_set.setdefault(synset, []).append(i)
    for j, w2 in enumerate(words2):
        hits = {i for synset in matchers.synsets(w2) for i in by_set.get(synset, ())}
        found[j].extend((j, 1, i, 1, SYNONYM) for i in sorted(hits) if words1[i] != w2)
    for j, length, i, k in _phrase_matches(words2, words1, matchers):  # phrases of the reference
        found[j].append((j, length, i, k, PARAPHRASE))
    for i, length, j, k in _phrase_matches(words1, words2, matchers):  # phrases of the hypothesis
        found[j].append((j, k, i, length, PARAPHRASE))
    return found


class _Path:
    __slots__ = ("matches", "m1", "m2", "chunks", "idx", "last_end", "distance", "used1", "used2")

    def copy(self) -> _Path:
        other = _Path.__new__(_Path)
        other.matches = self.matches[:]
        other.m1, other.m2, other.chunks, other.idx = self.m1, self.m2, self.chunks, self.idx
        other.last_end, other.distance = self.last_end, self.distance
        other.used1, other.used2 = self.used1[:], self.used2[:]
        return other

    def add(self, m: Match) -> None:
        start, length, start1, length1, module = m
        weight = SEARCH_WEIGHTS[module]
        self.m1 = int(self.m1 + length1 * weight)  # int fields in the jar: a lone half-credit word adds 0
        self.m2 = int(self.m2 + length * weight)
        if self.last_end != -1 and start1 != self.last_end:
            self.chunks += 1
        self.idx = start + length
        self.last_end = start1 + length1


def _rank(path: _Path) -> tuple[int, int, int]:
    return -(path.m1 + path.m2), path.chunks, path.distance


def _search(found: list[list[Match]], start: _Path) -> _Path:
    paths = [start]
    n2 = len(found)
    for current in range(n2 + 1):
        paths.sort(key=_rank)
        following: list[_Path] = []
        for path in paths[:BEAM]:
            if current == n2:
                if path.last_end != -1:
                    path.chunks += 1
                following.append(path)
                continue
            if path.used2[current]:
                if current < path.idx:
                    following.append(path)
                elif path.matches[path.idx] is not None:
                    m = path.matches[path.idx]
                    path.add(m)
                    path.distance += abs(m[0] - m[2])
                    following.append(path)
                continue
            for m in found[current]:
                start2, length, start1, length1, _ = m
                if any(path.used2[start2 : start2 + length]) or any(path.used1[start1 : start1 + length1]):
                    continue
                branch = path.copy()
                branch.used2[start2 : start2 + length] = [True] * length
                branch.used1[start1 : start1 + length1] = [True] * length1
                branch.matches[current] = m
                branch.add(m)
                path.distance += abs(start2 - start1)  # charged to the parent, as the jar does
                following.append(branch)
            if path.last_end != -1:
                path.chunks += 1
                path.last_end = -1
            path.idx += 1
            following.append(path)
        paths = following or paths[:1]
    paths.sort(key=_rank)
    return paths[0]


def _fixed_start(found: list[list[Match]], n1: int, n2: int) -> _Path:
    cover1, cover2 = [0] * n1, [0] * n2
    for options in found:
        for start2, length, start1, length1, _ in options:
            for k in range(start2, start2 + length):
                cover2[k] += 1
            for k in range(start1, start1 + length1):
                cover1[k] += 1
    path = _Path.__new__(_Path)
    path.matches, path.used1, path.used2 = [None] * n2, [False] * n1, [False] * n2
    path.m1 = path.m2 = path.chunks = path.idx = path.distance = 0
    path.last_end = -1
    for i, options in enumerate(found):
        if len(options) != 1:
            continue
        start2, length, start1, length1, _ = m = options[0]
        if all(cover2[i + k] == 1 for k in range(length)) and all(cover1[start1 + k] == 1 for k in range(length1)):
            path.matches[i] = m
            path.used2[i : i + length] = [True] * length
            path.used1[start1 : start1 + length1] = [True] * length1
    return path


def align(
    words1: Sequence[str], words2: Sequence[str], matchers: Matchers, function_words: frozenset[str]
) -> Alignment:
    """The jar's best alignment of hypothesis words ``words1`` to reference words ``words2``."""
    modules = 1 if list(words1) == list(words2) else 4
    found = _candidates(words1, words2, matchers, modules)
    start = _fixed_start(found, len(words1), len(words2))
    settled = all(start.matches[m[0]] == m for options in found for m in options)
    best = start if settled else _search(found, start)  # nothing left to choose: the search would keep ``start``
    result = Alignment(best.matches)
    for m in best.matches:
        if m is None:
            continue
        start2, length, start1, length1, module = m
        for w in words1[start1 : start1 + length1]:
            (result.function1 if w.lower() in function_words else result.content1)[module] += 1
        for w in words2[start2 : start2 + length]:
            (result.function2 if w.lower() in function_words else result.content2)[module] += 1
    result.chunks = _count_chunks(best.matches)
    return result


def _count_chunks(matches: list[Match | None]) -> int:
    chunks, idx, last_end = 0, 0, -1
    while idx < len(matches):
        m = matches[idx]
        if m is None:
            if last_end != -1:
                chunks += 1
                last_end = -1
            idx += 1
        else:
            if last_end != -1 and m[2] != last_end:
                chunks += 1
            idx = m[0] + m[1]
            last_end = m[2] + m[3]
    return chunks + (last_end != -1)
