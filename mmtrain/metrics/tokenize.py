"""PTB tokenization exactly as pycocoevalcap does it, in pure Python.

pycocoevalcap writes all captions into one file, one per line, runs Stanford's ``PTBTokenizer -preserveLines
-lowerCase`` (CoreNLP 3.4.1, Java) over it and drops the tokens in its ``PUNCTUATIONS`` list. :func:`ptb_tokenize`
gives the same token lists without Java, so scoring starts at once. Two facts of that pipeline show in the output:
parentheses and brackets come out as ``-lrb-``, ``-rrb-``, ``-lsb-``... (the Java tokenizer writes ``-LRB-``, lower-cases
it, and pycocoevalcap's filter only knows the upper-case form), and the lexer reads on past the end of a line, so the
start of the next caption can decide a token at the end of this one (``... vitamin c.`` keeps its period unless the
next caption starts with a sentence opener such as ``A``). :func:`tokenize_corpus` walks the captions in
pycocoevalcap's order so that this comes out the same too.

Known differences, all on text captions do not contain: characters outside the Basic Multilingual Plane (emoji) are
dropped here as the Java lexer drops their surrogate halves, except that it may then split a word around them; and a
newline-like character inside a caption (``\\r``, U+2028...) is a space here, where pycocoevalcap would start a new
line and misalign every caption after it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Hashable, Iterable, Mapping

from mmtrain.metrics import _ptb_chars
from mmtrain.metrics._ptb_rules import (
    ASSIMILATED,
    DROPPED,
    PERIOD_WORD,
    REP_DIGIT,
    REP_DROPPED,
    REP_LETTER,
    REP_MARK,
    REP_SYMBOL,
    RULES,
    SPECIAL,
    Rule,
)

#: The tokens pycocoevalcap removes after tokenizing (its ``PUNCTUATIONS`` list).
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--"])
PUNCTUATIONS = PUNCTUATIONS | {"...", ";"}

_DROPPED_CHAR = re.compile(f"[{DROPPED}]")  # after translation; SPECIAL characters the lexer drops are added below
# A caption made of plain words, commas and periods: its tokens are its lower-cased words unless a word is one of
# the few the lexer treats specially (``cannot``, ``etc.``, ``a.``).
_SIMPLE_CAPTION = re.compile(r" *(?:[A-Za-z]+[.,]?|[.,])(?: +(?:[A-Za-z]+[.,]?|[.,]))* *")
_PERIOD_WORD = re.compile(PERIOD_WORD)
_KEEPS_PERIOD: dict[str, bool] = {}
_PLAIN_WORD = re.compile(r"[A-Za-z]+(?=[ \t\n])")  # a word ending at whitespace is a WORD token (or special)
_SPACES = re.compile("[ \t][ \t\u00a0\u2000-\u200a\u3000]*|\n")  # a run as Java's SPACES rule takes it
_CONTEXT_CHARS = 40  # how far into the next caption the longest trailing context can look


class _Translator(dict):
    """``str.translate`` table mapping each non-ASCII character to the representative of its lexer class."""

    def __init__(self) -> None:
        super().__init__()
        spans = []
        for table, rep in ((_ptb_chars.LETTERS, REP_LETTER), (_ptb_chars.WORD_EXTRAS, REP_MARK)):
            spans += [(*_span(item), rep) for item in table.split()]
        for table, rep in ((_ptb_chars.DIGITS, REP_DIGIT), (_ptb_chars.DROPPED, REP_DROPPED)):
            spans += [(*_span(item), rep) for item in table.split()]
        spans.sort()
        self._starts = [start for start, _, _ in spans]
        self._spans = spans
        #: SPECIAL characters (kept as themselves) that the lexer drops when no rule takes them.
        self.dropped_special = frozenset(char for char in SPECIAL if self._class_of(ord(char)) == REP_DROPPED)

    def _class_of(self, code: int) -> str:
        index = bisect.bisect_right(self._starts, code) - 1
        start, end, rep = self._spans[index] if index >= 0 else (0, -1, REP_SYMBOL)
        return rep if start <= code <= end else REP_SYMBOL

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if code < 0x80 or char in SPECIAL:
            rep = char
        elif code > 0xFFFF or 0xD800 <= code <= 0xDFFF:  # Java sees surrogate halves, which it drops
            rep = REP_DROPPED
        else:
            rep = self._class_of(code)
        self[code] = rep
        return rep


def _span(item: str) -> tuple[int, int]:
    lo, _, hi = item.partition("-")
    return int(lo, 16), int(hi or lo, 16)


_TRANSLATE: _Translator | None = None


def _translator() -> _Translator:
    global _TRANSLATE
    if _TRANSLATE is None:
        _TRANSLATE = _Translator()
    return _TRANSLATE


def _translate(text: str) -> str:
    """Replace non-ASCII characters by their class representatives (same length, so positions still match)."""
    return text if text.isascii() else text.translate(_translator())


class _Compiled:
    """A rule with its compiled regex: group ``t`` is the token, group ``c`` the trailing context."""

    __slots__ = ("first", "has_context", "regex", "rule")

    def __init__(self, rule: Rule) -> None:
        pattern = f"(?P<t>{rule.pattern})"
        if rule.context is not None:
            pattern += f"(?=(?P<c>{rule.context}))"
        self.regex = re.compile(pattern)
        self.first = re.compile(rule.first)
        self.has_context = rule.context is not None
        self.rule = rule


_COMPILED: list[_Compiled] = []  # compiled on first use: plain captions never need them
_CANDIDATES: dict[str, tuple[_Compiled, ...]] = {}


def _candidates(char: str) -> tuple[_Compiled, ...]:
    """The rules whose match can start with ``char``, in priority order (cached per character)."""
    found = _CANDIDATES.get(char)
    if found is None:
        if not _COMPILED:
            _COMPILED.extend(_Compiled(rule) for rule in RULES)
        found = _CANDIDATES[char] = tuple(c for c in _COMPILED if c.first.match(char))
    return found


def _next_token(text: str, pos: int) -> tuple[int, Rule | None]:
    """Find the rule that lexes ``text`` at ``pos`` (JFlex semantics): (token length, rule or None if no rule)."""
    best, best_len, token_len = None, 0, 1
    for compiled in _candidates(text[pos]):
        match = compiled.regex.match(text, pos)
        if match is not None:
            length = (match.end("c") if compiled.has_context else match.end()) - pos
            if length > best_len:  # longest match wins; on a tie the earlier rule keeps it
                best, best_len, token_len = compiled.rule, length, match.end("t") - pos
    return token_len, best


def _lex(caption: str, following: str) -> list[str]:
    """PTBLexer tokens of ``caption`` (before lower-casing), with ``following`` as the text after it."""
    original = caption + following
    text = _translate(original)
    tokens: list[str] = []
    pos, end = 0, len(caption)
    while pos < end:
        space = _SPACES.match(text, pos)
        if space is not None:
            pos = space.end()
            continue
        word = _PLAIN_WORD.match(text, pos)
        if word is not None and word.group().lower() not in ASSIMILATED:
            tokens.append(word.group())
            pos = word.end()
            continue
        length, rule = _next_token(text, pos)
        token = original[pos : pos + length]
        if rule is None:  # a character no rule knows: dropped, or a symbol standing alone
            if _DROPPED_CHAR.match(text, pos) is None and (
                token.isascii() or token not in _translator().dropped_special
            ):
                tokens.append(token)
        elif not rule.drop:
            if rule.keep:
                token, length = token[: rule.keep], length + rule.keep
            tokens.append(rule.rewrite(token) if rule.rewrite is not None else token)
        pos += length
    return tokens


def _simple_tokens(caption: str) -> list[str] | None:
    """Tokens of a caption of plain words, or None when the caption needs the full lexer."""
    if _SIMPLE_CAPTION.fullmatch(caption) is None:
        return None
    if "." in caption:
        for before in caption.split(".")[:-1]:
            word = before[before.rfind(" ") + 1 :]  # the word directly before a period, if any
            keeps = _KEEPS_PERIOD.get(word)
            if keeps is None:
                keeps = _KEEPS_PERIOD[word] = word.isalpha() and _PERIOD_WORD.fullmatch(word + ".") is not None
            if keeps:
                return None
    words = caption.lower().replace(",", " ").replace(".", " ").split()
    return None if not ASSIMILATED.isdisjoint(words) else words


def ptb_tokenize(caption: str, *, next_caption: str | None = "") -> list[str]:
    """Tokenize one caption as pycocoevalcap's PTBTokenizer does: PTB rules, lower case, punctuation removed.

    Args:
        caption: Raw caption text.
        next_caption: What follows this caption in pycocoevalcap's batch: the next caption (or the next few, joined
            by newlines), or None if this is the batch's last. Its first characters can decide the last token of this
            one (see the module docstring); most callers can leave the default.

    Returns:
        The tokens pycocoevalcap keeps, in order.
    """
    caption = caption.replace("\n", " ")  # as pycocoevalcap does before writing one caption per line
    simple = _simple_tokens(caption)
    if simple is not None:
        return simple
    following = "" if next_caption is None else "\n" + next_caption[:_CONTEXT_CHARS]
    line = " ".join(_lex(caption, following)).lower()  # Java's toLowerCase(Locale.ENGLISH) agrees on the BMP
    # pycocoevalcap strips the line (Unicode whitespace, so a last token ending in U+3000 loses it), splits on spaces
    return [word for word in line.rstrip().split(" ") if word not in PUNCTUATIONS and word]


def tokenize_corpus(captions: Mapping[Hashable, Iterable[str]]) -> dict[Hashable, list[str]]:
    """Tokenize every caption of every image, returning space-joined strings like pycocoevalcap's tokenizer.

    Captions are taken in pycocoevalcap's order (images in mapping order, then each image's captions), each seeing
    the start of the next as the Java lexer does.

    Args:
        captions: Image id to its raw captions.

    Returns:
        Image id to its tokenized captions, each one space-joined string.
    """
    flat = [(key, caption) for key, texts in captions.items() for caption in texts]
    out: dict[Hashable, list[str]] = {key: [] for key in captions}
    for index, (key, caption) in enumerate(flat):
        tokens = _simple_tokens(caption)  # most captions: no context needed
        if tokens is None:
            tokens = ptb_tokenize(caption, next_caption=_following(flat, index + 1))
        out[key].append(" ".join(tokens))
    return out


def _following(flat: list[tuple[Hashable, str]], start: int) -> str | None:
    """The batch text from caption ``start`` on, as far as the lexer's context can reach; None at the batch's end."""
    if start >= len(flat):
        return None
    parts: list[str] = []
    length = 0
    for _, caption in flat[start:]:
        parts.append(caption.replace("\n", " "))
        length += len(caption) + 1
        if length > _CONTEXT_CHARS:
            break
    return "\n".join(parts)
