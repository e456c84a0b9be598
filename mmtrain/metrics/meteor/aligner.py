"""METEOR 1.5's alignment: candidate matches from four modules, then a beam search for the best one-to-one set.

Words of the hypothesis are "line 1" and words of the reference "line 2", as in the jar. Every possible match is
collected per reference position, module by module (exact, stem, synonym, paraphrase), in the jar's order; matches
that nothing else competes for are fixed at once, and a left-to-right beam search (40 paths) resolves the rest,
ranking paths by weighted matched words (exact 1, others 0.5, added into an integer as the jar does, so a lone
half-credit word adds nothing), then fewer chunks, then a smaller distance between matched positions. The order of
candidates and the jar's quirks (the distance is charged to the parent path) are kept: they decide ties.

Speed comes from work done once per corpus or once per sentence rather than once per hypothesis-reference pair: each
distinct sentence is prepared once (:class:`~mmtrain.metrics.meteor.sentence.Sentence`: where each word stands, which words of the corpus share its
stem or a synonym set, which table phrases and paraphrases it holds), so a pair costs a few dictionary and set
operations per reference word, and the beam search keeps each path as a small tuple: one integer for its rank,
bitmasks of the positions it uses, and its matches as a linked list. The results are the jar's, to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

from mmtrain.metrics.meteor.sentence import Sentence

BEAM = 40
EXACT, STEM, SYNONYM, PARAPHRASE = range(4)

# (start in line 2, length in line 2, start in line 1, length in line 1, module)
Match = tuple[int, int, int, int, int]

# A path's rank as one integer, smaller first: -(weighted matches) * _SCORE + chunks * _CHUNK + distance, which
# orders as the jar's (more matches, fewer chunks, less distance) while chunks < 2**24 and distance < 2**40.
_SCORE, _CHUNK = 1 << 64, 1 << 40
_rank = itemgetter(0)


@dataclass
class Alignment:
    """The chosen matches and the counts METEOR's statistics need, per module: (content, function) words."""

    matches: list[Match | None]
    content1: list[int]
    content2: list[int]
    function1: list[int]
    function2: list[int]
    chunks: int


def _phrase_hits(line: Sentence, other: Sentence, lengths: list[int]) -> list[tuple[int, int, int, int, int]]:
    """(start, length) in ``line`` of a table phrase, its table place, and (start, length) in ``other`` of that
    paraphrase, in the jar's order: by start, then phrase length, then the table place, then position in ``other``."""
    hits = []
    common = line.reachset & other.gramset
    for start, length, ranks, keys in line.phrases:
        for target in keys & common:
            starts, length_other = other.grams[target], lengths[target]
            hits.extend((start, length, place, at, length_other) for place in ranks[target] for at in starts)
    hits.sort()
    return hits


def _candidates(hyp: Sentence, ref: Sentence, lengths: list[int]) -> list[list[Match]]:
    """Every match per reference position, module by module in the jar's order."""
    positions, wordset = hyp.positions, hyp.wordset
    if hyp.words == ref.words:  # the jar runs the exact module alone on identical lines
        return [[(j, 1, i, 1, EXACT) for i in positions[w]] for j, w in enumerate(ref.words)]
    found: list[list[Match]] = [[] for _ in ref.words]
    for w in ref.wordset & wordset:
        at = positions[w]
        for j in ref.positions[w]:
            found[j] = [(j, 1, i, 1, EXACT) for i in at]
    if not ref.mateset.isdisjoint(wordset):  # some word of the hypothesis shares a stem or a synonym set
        for j, (stem_mates, synonym_mates) in enumerate(ref.mates):
            if not stem_mates.isdisjoint(wordset):
                at = sorted(i for w in stem_mates & wordset for i in positions[w])
                found[j].extend((j, 1, i, 1, STEM) for i in at)
            if not synonym_mates.isdisjoint(wordset):
                at = sorted(i for w in synonym_mates & wordset for i in positions[w])
                found[j].extend((j, 1, i, 1, SYNONYM) for i in at)
    if not ref.reachset.isdisjoint(hyp.gramset):  # phrases of the reference
        for j, length, _, i, k in _phrase_hits(ref, hyp, lengths):
            found[j].append((j, length, i, k, PARAPHRASE))
    if not hyp.reachset.isdisjoint(ref.gramset):  # phrases of the hypothesis
        for i, length, _, j, k in _phrase_hits(hyp, ref, lengths):
            found[j].append((j, k, i, length, PARAPHRASE))
    return found


def _fixed(found: list[list[Match]], n1: int, n2: int) -> tuple[list[Match | None], int, int, bool]:
    """The matches nothing competes for, the positions they use (bitmasks of lines 1 and 2), and whether that is
    every match there is (nothing left to search)."""
    cover1, cover2 = [0] * n1, [0] * n2
    for options in found:
        for start2, length, start1, length1, _ in options:
            if length == 1 == length1:
                cover2[start2] += 1
                cover1[start1] += 1
                continue
            for k in range(start2, start2 + length):
                cover2[k] += 1
            for k in range(start1, start1 + length1):
                cover1[k] += 1
    fixed: list[Match | None] = [None] * n2
    used1 = used2 = 0
    settled = True
    for i, options in enumerate(found):
        if not options:
            continue
        start2, length, start1, length1, _ = m = options[0]
        if len(options) == 1 and (
            cover2[i] == 1 and cover1[start1] == 1
            if length == 1 == length1
            else all(cover2[i + k] == 1 for k in range(length)) and all(cover1[start1 + k] == 1 for k in range(length1))
        ):
            fixed[i] = m
            used2 |= ((1 << length) - 1) << i
            used1 |= ((1 << length1) - 1) << start1
        else:
            settled = False
    return fixed, used1, used2, settled


def _option(m: Match) -> tuple:
    """A match as the search reads it: itself, the positions it uses (bitmasks of lines 1 and 2), its rank change,
    its distance, and where it starts and ends in line 1."""
    start2, length, start1, length1, module = m
    score = length1 + length if module == EXACT else length1 // 2 + length // 2  # int fields in the jar
    masks = (((1 << length1) - 1) << start1, ((1 << length) - 1) << start2)
    return m, *masks, -score * _SCORE, abs(start2 - start1), start1, start1 + length1


def _search(found: list[list[Match]], fixed: list[Match | None], used1: int, used2: int) -> list[Match | None]:
    """The matches of the jar's best path, left to right over line 2.

    A path is (rank, end in line 1 of its last match or -1, used positions of lines 1 and 2, its chosen matches as a
    linked list). The jar's path also keeps the next free position of line 2; here that is always the current one
    unless the path's own matches cover it, which its bitmask says. A fixed match is added to every path where it
    starts, and the positions it covers after that change no path, so they are skipped (sorting and cutting the
    beam twice in a row is the same as once).
    """
    paths = [(0, -1, used1, used2, None)]
    chunk, rank_of, beam = _CHUNK, _rank, BEAM
    closed = True  # no path has an open chunk
    for current, options in enumerate(found):
        bit, m = 1 << current, fixed[current]
        if used2 & bit and m is None:
            continue  # inside a fixed match
        if not options and m is None:  # nothing to match here: a path with an open chunk closes it
            if closed:
                continue  # no path changes
            if len(paths) > 1:
                paths.sort(key=rank_of)
                del paths[beam:]
            paths = [path if path[1] == -1 or path[3] & bit else (path[0] + chunk, -1, *path[2:]) for path in paths]
            closed = all(path[1] == -1 for path in paths)
            continue
        closed = False
        if len(paths) > 1:
            paths.sort(key=rank_of)
            del paths[beam:]
        if m is not None:
            _, _, _, score, distance, start1, end1 = _option(m)
            added = score + distance
            paths = [
                (rank + added + (chunk if last_end != start1 and last_end != -1 else 0), end1, u1, u2, chosen)
                for rank, last_end, u1, u2, chosen in paths
            ]
            continue
        options = [_option(m) for m in options]
        following = []
        add = following.append
        for path in paths:
            rank, last_end, u1, u2, chosen = path
            if u2 & bit:  # inside a match of this path
                add(path)
                continue
            for m, mask1, mask2, score, distance, start1, end1 in options:
                if u1 & mask1 or u2 & mask2:
                    continue
                if last_end != start1 and last_end != -1:
                    add((rank + score + chunk, end1, u1 | mask1, u2 | mask2, (m, chosen)))
                else:
                    add((rank + score, end1, u1 | mask1, u2 | mask2, (m, chosen)))
                rank += distance  # charged to the parent, as the jar does
            add((rank + chunk if last_end != -1 else rank, -1, u1, u2, chosen))
        paths = following
    paths.sort(key=_rank)
    paths = [(rank + _CHUNK if last_end != -1 else rank, last_end, *rest) for rank, last_end, *rest in paths[:BEAM]]
    paths.sort(key=_rank)
    matches, chosen = fixed[:], paths[0][4]
    while chosen is not None:
        m, chosen = chosen
        matches[m[0]] = m
    return matches


def align(hyp: Sentence, ref: Sentence, lengths: list[int]) -> Alignment:
    """The jar's best alignment of the hypothesis ``hyp`` to the reference ``ref``.

    Args:
        lengths: The length of each paraphrase id (:attr:`~mmtrain.metrics.meteor.sentence.Vocabulary.target_lengths`).
    """
    found = _candidates(hyp, ref, lengths)
    fixed, used1, used2, settled = _fixed(found, len(hyp.words), len(ref.words))
    matches = fixed if settled else _search(found, fixed, used1, used2)  # settled: the search would keep ``fixed``
    return _counted(matches, hyp.function, ref.function)


def _counted(matches: list[Match | None], is_function1: list[bool], is_function2: list[bool]) -> Alignment:
    """The counts of words each module matched, and the chunks: runs of matches adjacent in both lines."""
    content1, content2, function1, function2 = [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]
    chunks, idx, last_end = 0, 0, -1
    while idx < len(matches):
        m = matches[idx]
        if m is None:
            if last_end != -1:
                chunks += 1
                last_end = -1
            idx += 1
            continue
        start2, length, start1, length1, module = m
        for k in range(start1, start1 + length1):
            (function1 if is_function1[k] else content1)[module] += 1
        for k in range(start2, start2 + length):
            (function2 if is_function2[k] else content2)[module] += 1
        if last_end != -1 and start1 != last_end:
            chunks += 1
        idx, last_end = start2 + length, start1 + length1
    return Alignment(matches, content1, content2, function1, function2, chunks + (last_end != -1))
