"""The token rules of the Stanford PTB lexer as pycocoevalcap runs it (CoreNLP 3.4.1, default PTB3 escaping).

Each rule is a regular expression tried at the current position; as in JFlex, the longest match wins (trailing
context counts towards the length) and ties go to the earlier rule. The rules were written from the lexer's documented
behaviour and checked, case by case, against the jar that pycocoevalcap ships (see tests/metrics/test_tokenize.py).
Literal words are case-insensitive and character classes are not, as in the original (``%caseless``).

Rules that only decide whether a sentence-final period is emitted twice (``U.S. He``) are left out: that period is
removed by pycocoevalcap's punctuation filter anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

# Non-ASCII characters the rules name one by one. Every other non-ASCII character is first replaced by the
# representative of its class (see ``mmtrain.metrics._ptb_chars`` and ``tokenize._translate``), which keeps the
# character classes below small and the regexes quick to compile.
SPECIAL = (
    "\u0080\u0085\u0091\u0092\u0093\u0094\u0096\u0097\u00a0\u00a1\u00a2\u00a3\u00a4\u00a5\u00ab\u00ad"
    "\u00b2\u00b3\u00b9\u00bb\u00bc\u00bd\u00be\u00bf\u037e\u0589\u058a\u060b\u061f\u066b\u066c\u06d4"
    "\u0700\u0701\u0702\u07fa\u0e3f\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u200e\u200f\u2010\u2011\u2013\u2014\u2015\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f"
    "\u2026\u2028\u2029\u2039\u203a\u2044\u2070\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b\u2080"
    "\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089\u208a\u208b\u20a0\u20a4\u20ac\u2153\u2154"
    "\u2155\u2156\u2157\u2158\u2159\u215a\u215b\u215c\u215d\u215e\u3000\u3001\ufeff\uffe0"
    "\uffe1\uffe5\uffe6"
)
# Representatives of the classes in _ptb_chars (none of them is in SPECIAL).
REP_LETTER, REP_MARK, REP_DIGIT, REP_DROPPED, REP_SYMBOL = "\u00aa", "\u0300", "\u0660", "\x01", "\u2603"

# --- character classes (bodies, without brackets) ------------------------------------------------------------------
_LET = "A-Za-z\u00aa\u07fa"  # [:letter:]: ASCII, the representative, and the one letter SPECIAL names
_DIG = "0-9\u0660"  # [:digit:]
_WORDCH = _LET + "\u0300\u00ad"  # letters plus marks the lexer keeps inside words (soft hyphen among them)
DROPPED = "\x00-\x08\x0e-\x1f\x7f"  # controls; REP_DROPPED is one of them
_SPACE = " \t\u00a0\u2000-\u200a\u3000"
_NL = "\n\r\x0b\x0c\u0085\u2028\u2029"

# --- macros ---------------------------------------------------------------------------------------------------------
LETTER = f"(?:[{_WORDCH}]|&[aeiouAEIOU](?i:acute|grave|uml);)"
WORD = f"{LETTER}(?:{LETTER}|[{_DIG}])*(?:[.!?]{LETTER}(?:{LETTER}|[{_DIG}])*)*"
APOS = "(?:['\\u0092\\u2019]|&(?i:apos);)"
APOSETC = f"(?:{APOS}|[`\\u0091\\u2018\\u201b])"
REDAUX = f"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SWORD = "[A-Za-z\\u00ad]*[A-MO-Za-mo-z]\\u00ad*"
SREDAUX = f"(?i:n){APOSETC}(?i:t)"
ALNUM = f"[{_LET}{_DIG}]"
NUM = f"(?:[{_DIG}]*(?:[.:,\\u00ad\\u066b\\u066c][{_DIG}]+)+|[{_DIG}]+)"
HYPHEN = "[-_\\u058a\\u2010\\u2011]"
ACRO = "(?:(?i:u\\.s\\.-)(?i:u\\.k|u\\.s\\.s\\.r)|(?i:canada|sino|korean|eu|japan|non)-(?i:u\\.s)|[A-Za-z](?:\\.[A-Za-z])+)"
STATES = (
    "(?i:ala|ariz|calif|colo|conn|ct|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn|va|vt|"
    "wisc?|wyo)|A(?i:z|rk)|D(?i:el)|I(?i:ll)|L(?i:a)|M(?i:ass|iss)|O(?i:re)|P(?i:a)|T(?i:ex)|W(?i:ash)"
)
ABBREV1 = (
    "(?:(?i:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tues?|wed|thu|thurs|fri)|" + STATES + "|"
    "(?i:inc|cos?|corp|ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys|tel|est|ext|sq|jr|sr|bros|ed\\.d|ph\\.d|esq|blvd|rd|"
    "etc|al|seq|bldg)|(?i:pp?t)[ye](?i:s)?)\\."
)
TITLES = (
    "(?i:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|capt|ste?|ave|pres|"
    "lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst|assoc|ens|insp|mlle|mme|msgr|sfc)|M(?i:iss)"
)
ABBREV4 = (
    f"(?:{ACRO}|(?i:a\\.k\\.a|vs|alex|wm|jos|cie|cf|treas|invt|elec|natl|dept)|(?i:m)[ft](?i:g)|{TITLES}|[A-Za-z])"
)
THING_PART = f"(?:[dDoO]{APOSETC}{ALNUM})?{ALNUM}+"
THING = f"{THING_PART}(?:{HYPHEN}{THING_PART})*"
FILECH = f"[{_WORDCH}{_DIG}]"
FILENAME = (
    f"{FILECH}+(?:\\.{FILECH}+)*\\.(?i:bat|bmp|c|class|cgi|cpp|dll|docx?|exe|gif|gz|h|html?|jar|java|jpe?g|mov|mp3|pdf|"
    "php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip)"
)
HTHING = f"[A-Za-z0-9][A-Za-z0-9.,\\u00ad]*(?:-(?:{ACRO}\\.|[A-Za-z0-9\\u00ad]+))+"
QUOTECH = "`\\u2018\\u2019\\u201a\\u201b\\u201c\\u201d\\u0091-\\u0094\\u201e\\u201f\\u2039\\u203a\\u00ab\\u00bb"
INSENTP = "[,;:\\u3001]"
SENTENCE_STARTS = (
    "A(?i:bout|ccording|dditionally|fter|n|s|t)?|B(?i:ut)|E(?i:arlier)|H(?i:e|er|ere|owever)|I(?i:f|n|t)|L(?i:ast)|"
    "M(?i:any|ore|r\\.|s\\.)|N(?i:ow)|O(?i:nce|ne|ther|ur)|S(?i:he|ince|o|ome|uch)|"
    "T(?i:hat|he|heir|hen|here|hese|hey|his)|W(?i:e|hen|hile|hat)|Y(?i:et|ou)"
)
SGML = (
    "<(?:[!?][A-Za-z-][^>\\r\\n]*|[A-Za-z][A-Za-z0-9_:.-]*(?:[ ]+(?:[A-Za-z][A-Za-z0-9_:.-]*(?:[ ]*=[ ]*"
    "(?:'[^'\\r\\n]*'|\"[^\"\\r\\n]*\"|[A-Za-z][A-Za-z0-9_:.-]*))?))*[ ]*/?|/[A-Za-z][A-Za-z0-9_:.-]*)[ ]*>"
)

LIKELYURL = (
    '(?:(?i:www)\\.(?:[^ \\t\\n\\f\\r"<>|.!?(){},]+\\.)+[a-zA-Z]{2,4}|(?:[^ \\t\\n\\f\\r"`\'<>|.!?(){},-_$]+\\.)+'
    '(?i:com|net|org|edu))(?:/[^ \\t\\n\\f\\r"<>|()]*[^ \\t\\n\\f\\r"<>|.!?(){},-])?'
)
EMAIL = (
    '(?:<|&(?i:lt);)?[a-zA-Z0-9][^ \\t\\n\\f\\r"<>|()\\u00a0{}]*@(?:[^ \\t\\n\\f\\r"<>|(){}.\\u00a0]+\\.)*'
    '[^ \\t\\n\\f\\r"<>|(){}.\\u00a0]+(?:>|&(?i:gt);)?'
)
SUBSUPNUM = "[\\u207a\\u207b\\u208a\\u208b]?(?:[\\u2070\\u00b9\\u00b2\\u00b3\\u2074-\\u2079]+|[\\u2080-\\u2089]+)"
FRAC = f"(?:[{_DIG}]{{1,4}}[- \\u00a0])?[{_DIG}]{{1,4}}(?:\\\\?/|\\u2044)[{_DIG}]{{1,4}}"
TBSPEC = (
    f"-(?i:rrb|lrb|rcb|lcb|rsb|lsb)-|(?i:c\\.d\\.s|pro-|anti-)|(?i:s)(?:&|&(?i:amp);)(?i:p-500|ls)|"
    f"(?i:cap){APOS}(?i:n)|(?i:c){APOS}(?i:est)"
)
CURRENCY = "\\u00a2\\u00a3\\u00a4\\u00a5\\u0080\\u20a0\\u20ac\\u060b\\u0e3f\\u20a4\\uffe0\\uffe1\\uffe5\\uffe6"
PHONE = (
    "(?:\\([0-9]{2,3}\\)[ \\u00a0]?|(?:\\+\\+?)?(?:[0-9]{2,4}[- \\u00a0])?[0-9]{2,4}[- \\u00a0])[0-9]{3,4}"
    "[- \\u00a0]?[0-9]{3,5}|(?:(?:\\+\\+?)?[0-9]{2,4}\\.)?[0-9]{2,4}\\.[0-9]{3,4}\\.[0-9]{3,5}"
)
ASIAN_SMILEY = "[-^x=~<>']_[-^x=~<>']|\\([-^x=~<>'][_.]?[-^x=~<>']\\)|\\([\\^x=~<>']-[\\^x=~<>'`]\\)"
THINGA = "[A-Z]+(?:(?:[+&]|&(?i:amp);)[A-Z]+)+"
PUNCT = "[.\\u00a1\\u00bf\\u037e\\u0589\\u061f\\u06d4\\u0700-\\u0702\\u07fa=/]"


# --- token rewrites -------------------------------------------------------------------------------------------------
def _latex_quotes(probably_left: bool) -> Callable[[str], str]:
    single, double = ("`", "``") if probably_left else ("'", "''")

    def rewrite(text: str) -> str:
        text = re.sub("&apos;|'", single, text)
        text = re.sub('"|&quot;', double, text)
        text = re.sub("[\\u0091\\u2018\\u201b\\u2039]", "`", text)
        text = re.sub("[\\u0092\\u2019\\u203a]", "'", text)
        text = re.sub("[\\u0093\\u201c\\u00ab]", "``", text)
        return re.sub("[\\u0094\\u201d\\u00bb]", "''", text)

    return rewrite


_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}


def _unsoft(text: str) -> str:
    return text.replace("\u00ad", "")


def _nbsp(text: str) -> str:
    return text.replace(" ", "\u00a0")


def _parens(text: str) -> str:
    return text.replace("(", "-LRB-").replace(")", "-RRB-")


def _amp(text: str) -> str:
    return re.sub("(?i:&amp;)", "&", text)


def _dashes(text: str) -> str:
    return "--" if 3 <= len(text) <= 4 else text


class Rule(NamedTuple):
    """One lexer rule: the characters it can start with, its pattern and optional trailing context, its output."""

    first: str  # a character class holding every character a match can start with (used to skip hopeless rules)
    pattern: str
    context: str | None = None
    rewrite: Callable[[str], str] | None = None
    keep: int = 0  # <0: emit all but the last -keep characters and lex those again (``cannot`` -> ``can`` ``not``)
    drop: bool = False  # whitespace and ignorable characters: consume, emit nothing


_QL, _QR = _latex_quotes(True), _latex_quotes(False)
_W = f"[{_WORDCH}&]"  # where a WORD can start (a letter or an accented-letter entity)
_AP = "['\\u0092\\u2019&]"  # where an APOS can start
_SPNL = f"[{_SPACE}{_NL}]"

RULES: list[Rule] = [
    Rule("[cCfF]", "(?i:c\\+\\+|[cf]#)"),
    Rule("[cC']", "(?i:cannot|'twas)", keep=-3),
    Rule("['gGlLwW]", "(?i:'tis|gonna|gotta|lemme|gimme|wanna)", keep=-2),
    Rule("<", SGML, rewrite=_nbsp),
    Rule(
        "[&\\u0096\\u0097\\u2013-\\u2015]",
        "&(?i:md|mdash|ndash);|[\\u0096\\u0097\\u2013\\u2014\\u2015]",
        rewrite=lambda _: "--",
    ),
    Rule("&", "&(?i:amp);", rewrite=lambda _: "&"),
    Rule("&", "&(?i:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);"),
    Rule(_W, WORD, context=REDAUX, rewrite=_unsoft),
    Rule("[A-Za-z\\u00ad]", SWORD, context=SREDAUX, rewrite=_unsoft),
    Rule(_W, WORD, rewrite=_unsoft),
    # words with an apostrophe inside, kept whole
    Rule(
        "['\\u0092\\u2019&lLdDjJsSoO]",
        f"{APOS}(?i:n){APOS}?|[lLdDjJ]{APOS}|(?i:dunkin|somethin|ol){APOS}|{APOS}(?i:em|cause|till?)",
    ),
    Rule("[A-HJ-XZn'\\u0092\\u2019&]", f"[A-HJ-XZn]{APOSETC}[{_LET}]{{2}}[{_LET}]*|{APOS}[2-9]0(?i:s)"),
    Rule(f"[{_LET}]", f"[{_LET}]+[aeiouyAEIOUY]{APOSETC}[aeiouA-Z][{_LET}]*"),
    Rule("[nNcCeEsSlL]", "(?i:nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)"),
    Rule("[yY]", f"(?i:y){APOS}", context=f"[{_LET}]"),
    Rule("[hH]", '(?i:https?)://[^ \\t\\n\\f\\r"<>|(){}]+[^ \\t\\n\\f\\r"<>|.!?(){},-]'),
    Rule("[^ \\t\\n\\f\\r]", LIKELYURL),
    Rule("[<&a-zA-Z0-9]", EMAIL),
    Rule("[@#]", f"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+"),
    Rule(_AP, REDAUX, context="[^A-Za-z]", rewrite=_QR),
    Rule("[nN]", SREDAUX, context="[^A-Za-z]", rewrite=_QR),
    Rule(f"[{_DIG}]", f"[{_DIG}]{{1,2}}[-/][{_DIG}]{{1,2}}[-/][{_DIG}]{{2,4}}"),
    Rule(f"[-+{_DIG}.:,\\u00ad\\u066b\\u066c]", f"[-+]?{NUM}", rewrite=_unsoft),
    Rule("[\\u207a\\u207b\\u208a\\u208b\\u2070\\u00b9\\u00b2\\u00b3\\u2074-\\u2079\\u2080-\\u2089]", SUBSUPNUM),
    Rule(f"[{_DIG}]", FRAC, rewrite=_nbsp),
    Rule(
        "[\\u00bc\\u00bd\\u00be\\u2153-\\u215e]",
        "[\\u00bc\\u00bd\\u00be\\u2153-\\u215e]",
        rewrite=lambda t: _FRACTIONS.get(t, t),
    ),
    Rule("[-cCpPaAsS]", TBSPEC, rewrite=_amp),
    Rule("[A-Za-z0-9]", "[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"),
    Rule("[A-Z$#]", "[A-Z]*\\$|#"),
    Rule(f"[{CURRENCY}]", f"[{CURRENCY}]", rewrite=lambda t: _CURRENCY.get(t, t)),
    # an acronym before a sentence-starting word ends the sentence; a single letter then loses its period
    Rule(
        "[A-Za-z]",
        "[A-Za-z](?:\\.[A-Za-z])*\\.",
        context=f"{_SPNL}+(?:{SENTENCE_STARTS}|{SGML}){_SPNL}",
        rewrite=lambda t: t[0] if len(t) == 2 else t,
    ),
    Rule("[cCfFpPnNaAbBoO]", "(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\.", context=f"{_SPNL}?[{_DIG}]"),
    Rule("[pPcC]", "(?i:pt[ey]|co)\\.", context=f"[{_SPACE}](?i:ltd|lim)"),
    Rule("[A-Za-z]", ABBREV1, context="[\\s\\S]{2}"),  # any two characters: beats a longer WORD (``Az.b``)
    Rule("[A-Za-z]", ABBREV1),
    Rule("[A-Za-z]", ABBREV4 + "\\."),
    Rule("[A-Za-z]", ABBREV4, context=f"[{_SPACE}]"),
    Rule("[A-Za-z]", ACRO, context=_SPNL),
    Rule(_AP, f"{APOS}[0-9][0-9]", context=_SPNL),
    Rule(FILECH, FILENAME, context=f"[{_SPACE}{_NL}.?!,]"),
    Rule(_W, f"{WORD}\\.", context=INSENTP, rewrite=_unsoft),
    Rule("[(+0-9]", PHONE, rewrite=lambda t: _parens(_nbsp(t))),
    Rule('["&]', '"|&(?i:quot);', context="[A-Za-z0-9$]", rewrite=_QL),
    Rule('["&]', '"|&(?i:quot);', rewrite=_QR),
    Rule("[<&]", "<|&(?i:lt);", rewrite=lambda _: "<"),
    Rule("[>&]", ">|&(?i:gt);", rewrite=lambda _: ">"),
    Rule("[<>:;=]", "[<>]?[:;=][-o*']?[()DPdpO\\\\{@|\\[\\]]", context="[^A-Za-z0-9]", rewrite=_parens),
    Rule("[-^x=~<>'(]", ASIAN_SMILEY, rewrite=_parens),
    Rule("[()\\[\\]{}]", "[()\\[\\]{}]", rewrite=lambda t: _BRACKETS[t]),
    Rule("-", "-+", rewrite=_dashes),
    Rule("[.\\u0085\\u2026]", "\\.{3,5}|(?:\\.[ \\u00a0]){2,4}\\.|[\\u0085\\u2026]", rewrite=lambda _: "..."),
    Rule("[@#_]", "@+|#+|_+"),
    Rule("[*\\\\]", "\\*+|(?:\\\\\\*){1,3}"),
    Rule(INSENTP, INSENTP),
    Rule("[?!]", "[?!]+"),
    Rule(PUNCT, PUNCT),
    Rule("[A-Za-z0-9]", f"{HTHING}\\.", context=INSENTP, rewrite=_unsoft),
    Rule("[A-Za-z0-9]", HTHING, rewrite=_unsoft),
    Rule(f"[{_LET}{_DIG}]", f"{THING}\\.", context=INSENTP),
    Rule(f"[{_LET}{_DIG}]", THING),
    Rule("[A-Z]", f"{THINGA}\\.", context=INSENTP, rewrite=_amp),
    Rule("[A-Z]", THINGA, rewrite=_amp),
    Rule("'", "'", context="[A-Za-z][^ \\t\\n\\r\\u00a0]", rewrite=_QL),
    Rule(_AP, REDAUX, rewrite=_QR),
    Rule(f"['&{QUOTECH}]", f"''|[{QUOTECH}]{{1,2}}|{APOS}", rewrite=_QR),
    Rule("[<>]", "<<|>>"),
    Rule(
        f"[{_SPACE}{_NL}&\\u200b\\u200e\\u200f\\ufeff{DROPPED}]",
        f"[{_SPACE}]+|\\r\\n|[{_NL}]|[\\u200b\\u200e\\u200f\\ufeff]|&(?i:nbsp);|[{DROPPED}]",
        drop=True,
    ),
]

#: Words the lexer splits even when they stand alone (``cannot`` -> ``can not``).
ASSIMILATED = frozenset(["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"])
#: Words that, followed by a period, can form one token with it (abbreviations and single letters).
PERIOD_WORD = (
    f"{ABBREV1}|{ABBREV4}\\.|(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\.|(?i:pt[ey]|co)\\.|[A-Za-z](?:\\.[A-Za-z])*\\."
)
