"""What METEOR's matchers read of a corpus and of each sentence, prepared once so that pairing sentences is cheap.

:class:`Vocabulary` gathers, once per corpus, the words that match each word by stem or synonym and every window of a
paraphrase-table phrase; :class:`Sentence` records, once per distinct sentence, where its words stand, which are
function words, and which table phrases and paraphrases it holds. :mod:`mmtrain.metrics.meteor.aligner` pairs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Vocabulary:
    """What the matchers know of a corpus's words and phrases, gathered once for the whole corpus.

    Args:
        words: Every word of the corpus.
        stem: The stemmer.
        synsets: The synonym sets of a word.
        paraphrases: Each table phrase of the corpus to its paraphrases, in the table's order.
        function_words: Words that count as function words.
    """

    def __init__(
        self,
        words: Iterable[str],
        *,
        stem: Callable[[str], str],
        synsets: Callable[[str], frozenset[int]],
        paraphrases: dict[tuple[str, ...], list[tuple[str, ...]]],
        function_words: frozenset[str],
    ) -> None:
        words = set(words)
        by_stem: dict[str, set[str]] = {}
        by_synset: dict[int, set[str]] = {}
        for word in words:
            by_stem.setdefault(stem(word), set()).add(word)
            for synset in synsets(word):
                by_synset.setdefault(synset, set()).add(word)
        # the other words of the corpus a word matches by stem, and by synonym
        self.mates = {
            w: (frozenset(by_stem[stem(w)] - {w}), frozenset(set().union(*(by_synset[s] for s in synsets(w))) - {w}))
            for w in words
        }
        self.all_mates = {w: by_stem | by_synonym for w, (by_stem, by_synonym) in self.mates.items()}
        self.function_words = function_words
        self.target_ids: dict[tuple[str, ...], int] = {}  # each paraphrase (a table phrase's other side) to an id
        # each phrase: its paraphrase ids to their places in the table's list, and those ids as a set
        self.ranks: dict[tuple[str, ...], tuple[dict[int, list[int]], frozenset[int]]] = {}
        for phrase, options in paraphrases.items():
            ranks: dict[int, list[int]] = {}
            for rank, option in enumerate(options):  # a pair listed twice matches twice, as in the jar
                ranks.setdefault(self.target_ids.setdefault(option, len(self.target_ids)), []).append(rank)
            self.ranks[phrase] = ranks, frozenset(ranks)
        self.target_lengths = [len(t) for t in self.target_ids]
        # every start of a paraphrase or table phrase (a window that is none stops the scan of longer ones), to its
        # paraphrase id and its table entry if it is one, in one look-up
        self.windows: dict[tuple[str, ...], tuple] = {p[:n]: (None, None) for p in self.ranks for n in range(len(p))}
        self.windows.update((p[:n], (None, None)) for p in self.target_ids for n in range(len(p)))
        self.windows.update((p, (i, None)) for p, i in self.target_ids.items())
        self.windows.update((p, (self.target_ids.get(p), ranks)) for p, ranks in self.ranks.items())


class Sentence:
    """One normalized sentence with what every pairing of it reads, computed once.

    Attributes:
        words: The words.
        positions: Each word to where it stands, in order.
        function: Per position, whether the word is a function word.
        function_count: How many function words.
        mates: Per position, the corpus's words that match it by stem and by synonym.
        mateset: All those words.
        grams: Each paraphrase id whose words stand here, to where they start (in order).
        phrases: (start, length, paraphrase ids to table places, those ids) of each table phrase here, by start then
            length.
        reachset: The paraphrase ids of all those phrases.
    """

    __slots__ = ("words", "positions", "wordset", "function", "function_count", "mates", "mateset")
    __slots__ += ("grams", "gramset", "phrases", "reachset")

    def __init__(self, words: tuple[str, ...], vocabulary: Vocabulary) -> None:
        self.words = words
        self.positions: dict[str, list[int]] = {}
        for i, word in enumerate(words):
            self.positions.setdefault(word, []).append(i)
        self.wordset = frozenset(words)
        self.function = [w in vocabulary.function_words for w in words]
        self.function_count = sum(self.function)
        self.mates = [vocabulary.mates[w] for w in words]
        self.mateset = frozenset().union(*(vocabulary.all_mates[w] for w in words))
        self.grams: dict[int, list[int]] = {}
        self.phrases: list[tuple[int, int, dict[int, list[int]], frozenset[int]]] = []
        windows = vocabulary.windows
        for start in range(len(words)):
            for end in range(start + 1, len(words) + 1):
                found = windows.get(words[start:end])
                if found is None:
                    break
                target, ranks = found
                if target is not None:
                    self.grams.setdefault(target, []).append(start)
                if ranks is not None:
                    self.phrases.append((start, end - start, *ranks))
        self.gramset = frozenset(self.grams)
        self.reachset = frozenset().union(*(keys for *_, keys in self.phrases))
