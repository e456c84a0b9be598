"""METEOR 1.5's ``-norm`` text normalization for English, rebuilt from its documented rules.

The jar tokenizes every line again before aligning: punctuation other than dots, apostrophes, commas and dashes is
set apart, runs of dots are kept whole, commas are split except inside numbers, quotes and dashes are unified,
dashes between words are removed, English contractions are split to the right ("do n't" style: "it 's"), and a
trailing dot is split from a word unless the word is a known abbreviation (the jar's nonbreaking prefix list) or the
next word starts in lower case. Java's character classes are ASCII where the jar uses ``\\p{Digit}``, ``\\s`` and
``\\p{Lower}``, so the patterns below spell those out.
"""

from __future__ import annotations

import re

_ALPHA = "A-Za-z\u0160\u017d\u0161\u017e\u0178\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017e" + (
    "\u0400-\u04ff\u0500-\u0527\ua640-\ua66e\ua67e-\ua697\u1d00-\u1d7f"
)
_ALNUM = "0-9" + _ALPHA
_SEP_OTHER = re.compile(f"([^{_ALNUM} \t\n\x0b\f\r.'`,\\-\u2018\u2019])")
_MULTI_DOT = re.compile(r"\.([.]+)")
_MULTI_DOT2 = re.compile(r"DOTMULTI\.([^.])")
_COMMA = re.compile(r"([^0-9]),([^0-9])")
_COMMA2 = re.compile(r"([0-9]),([^0-9])")
_COMMA3 = re.compile(r"([^0-9]),([0-9])")
_QUOTE = re.compile("[`\u2018\u2019]")
_QUOTE2 = re.compile("([\u201c\u201d]|'')")
_RM_DASH = re.compile(f"([{_ALNUM}.])-([{_ALNUM}])")
_CONT1 = re.compile(f"([^{_ALPHA}])'([^{_ALPHA}])")
_CONT2 = re.compile(f"([^{_ALPHA}0-9])'([{_ALPHA}])")
_CONT3 = re.compile(f"([{_ALPHA}])'([^{_ALPHA}])")
_CONT4 = re.compile(f"([{_ALPHA}])'([{_ALPHA}])")
_CONT5 = re.compile(r"([0-9])'(s)")
_NBP_ALPHA = re.compile(f"[{_ALPHA}]")
_WHITE = re.compile("[ \u2000-\u200a\u202f\u205f\u3000\u00a0]+")
_TOKEN_SPLIT = re.compile("[ \t\n\r\f]+")
_PLAIN = re.compile("[A-Za-z0-9 ]*")
NUMERIC_ONLY = 2
ANY = 1


def parse_prefixes(text: str) -> dict[str, int]:
    """The nonbreaking prefix list: prefix to ANY, or NUMERIC_ONLY when only a following number keeps the dot."""
    prefixes: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        prefixes[fields[0]] = NUMERIC_ONLY if len(fields) > 1 and fields[1] == "#NUMERIC_ONLY#" else ANY
    return prefixes


def _split_dots(words: list[str], prefixes: dict[str, int]) -> str:
    out = []
    for i, word in enumerate(words):
        if len(word) > 1 and word.endswith("."):
            pre = word[:-1]
            kind = prefixes.get(pre)
            following = words[i + 1] if i + 1 < len(words) else ""
            if "." in pre and _NBP_ALPHA.search(pre):
                out.append(word.replace(".", ""))
            elif kind == ANY or ("a" <= following[:1] <= "z"):
                out.append(word)
            elif kind == NUMERIC_ONLY and "0" <= following[:1] <= "9":
                out.append(word)
            else:
                out.append(pre + " .")
        else:
            out.append(word)
    return " ".join(out) + " "


def normalize_line(line: str, prefixes: dict[str, int]) -> str:
    """One line as the jar's English normalizer (punctuation kept) leaves it, before lower-casing."""
    if _PLAIN.fullmatch(line) and "DOTMULTI" not in line:
        return " ".join(line.split())  # letters, digits and spaces: no rule below changes anything but the spaces
    text = _SEP_OTHER.sub(r" \1 ", f" {line} ")
    text = _MULTI_DOT.sub(r" DOTMULTI\1", text)
    while "DOTMULTI." in text:
        text = _MULTI_DOT2.sub(r"DOTDOTMULTI \1", text)
        text = text.replace("DOTMULTI.", "DOTDOTMULTI")
    text = _COMMA3.sub(r"\1 , \2", _COMMA2.sub(r"\1 , \2", _COMMA.sub(r"\1 , \2", text)))
    text = _QUOTE2.sub(' " ', _QUOTE.sub("'", text))
    text = text.replace("\u2013", "-").replace("--", "-")
    text = _RM_DASH.sub(r"\1 \2", text)
    for pattern in (_CONT1, _CONT2, _CONT3):
        text = pattern.sub(r"\1 ' \2", text)
    text = _CONT5.sub(r"\1 '\2", _CONT4.sub(r"\1 '\2", text))
    text = _split_dots([w for w in _TOKEN_SPLIT.split(text) if w], prefixes)
    while "DOTDOTMULTI" in text:
        text = text.replace("DOTDOTMULTI", "DOTMULTI.")
    text = text.replace("DOTMULTI", ".")
    return _WHITE.sub(" ", text).strip()


def words(line: str) -> list[str]:
    """Split on the whitespace Java's StringTokenizer splits on."""
    return [w for w in _TOKEN_SPLIT.split(line) if w]
