"""PTB tokenization: equal to pycocoevalcap's Java tokenizer on real captions and on hard cases."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict

import pytest

from mmtrain.metrics import _ptb_rules
from mmtrain.metrics.tokenize import ptb_tokenize, tokenize_corpus

# Hard cases and what pycocoevalcap's PTBTokenizer (Stanford CoreNLP 3.4.1, Java) keeps of them, as one batch in
# this order (the start of each caption is context for the end of the one before it). Re-checked against the jar by
# test_tricky_cases_match_the_java_tokenizer.
TRICKY = [
    ("I don't know why they can't go.", "i do n't know why they ca n't go"),
    ("It won't fit, it's too big and I'm tired.", "it wo n't fit it 's too big and i 'm tired"),
    ("Y'all should see 'tis the season.", "y' all should see 't is the season"),
    ("The dog's bone is next to the dogs' bowls.", "the dog 's bone is next to the dogs bowls"),
    ('He said "hello" to the man.', "he said hello to the man"),
    ("She yelled 'stop' at the dog.", "she yelled stop at the dog"),
    ("A sign reads `open' and ``closed'' at once.", "a sign reads open and closed at once"),
    ("A “curly quoted” word and ‘single curly’ ones.", "a curly quoted word and single curly ones"),
    ("It’s a dog’s life, isn’t it?", "it 's a dog 's life is n't it"),
    ("A well-known x-ray of a state-of-the-art machine.", "a well-known x-ray of a state-of-the-art machine"),
    ("A man -- or a woman - stands there.", "a man or a woman stands there"),
    ("A long dash — and an en dash – here.", "a long dash and an en dash here"),
    ("Black and/or white cats, w/ a hat.", "black and/or white cats w / a hat"),
    ("It costs 3.5 dollars, 1,000 yen or 1/2 a pound.", "it costs 3.5 dollars 1,000 yen or 1/2 a pound"),
    ("About 2 1/2 cups and 3/4 of a pie.", "about 2\xa01/2 cups and 3/4 of a pie"),
    ("Wait... what? ... really?! ....", "wait what really ?!"),
    (
        "A sign (with parentheses) and [brackets] and {braces}.",
        "a sign -lrb- with parentheses -rrb- and -lsb- brackets -rsb- and -lcb- braces -rcb-",
    ),
    ("A café with naïve art and a résumé.", "a café with naïve art and a résumé"),
    ("AT&T and Johnson & Johnson and rock & roll.", "at&t and johnson & johnson and rock & roll"),
    ("Prices rose 50% to $20 or US$5.", "prices rose 50 % to $ 20 or us$ 5"),
    ("Mr. Smith and Dr. Jones at St. Mary's on Jan. 5.", "mr. smith and dr. jones at st. mary 's on jan. 5"),
    ("The U.S. flag flies over the U.S.A. building.", "the u.s. flag flies over the u.s.a. building"),
    ("E.g. cats, i.e. small ones, etc.", "e.g. cats i.e. small ones etc."),
    ("A man cannot gonna wanna go.", "a man can not gon na wan na go"),
    ("A tennis player at 10:30 a.m. on 12/25/2014.", "a tennis player at 10:30 a.m. on 12/25/2014"),
    ("A 1990s car and a '60s van from the 80's.", "a 1990s car and a '60s van from the 80 's"),
    ("Visit www.example.com or http://example.org/page now.", "visit www.example.com or http://example.org/page now"),
    ("Email john.doe@example.com for info.", "email john.doe@example.com for info"),
    ("A tweet says #happy @user.", "a tweet says #happy @user"),
    ("Look at this :) it's funny :( ok ;)", "look at this :-rrb- it 's funny :-lrb- ok ;-rrb-"),
    ('A man holds a sign saying "NO."', "a man holds a sign saying no"),
    ("A bus #42 goes to 5th Ave.", "a bus # 42 goes to 5th ave."),
    ('A sign: "Welcome!" and another; "Stop?"', "a sign welcome and another stop"),
    ("A 3-D movie and a 4x4 truck with 20'' wheels.", "a 3-d movie and a 4x4 truck with 20 wheels"),
    ("Two men, one woman, and a child.", "two men one woman and a child"),
    ("vitamin c.", "vitamin c"),
    ("A photo of A.", "a photo of a."),
    ("It's 6'2\" tall.", "it 's 6 2 tall"),
    ("The ½ price sale at 25°C.", "the 1/2 price sale at 25 ° c."),
    ("Café au lait – très bon!", "café au lait très bon"),
    ('A ship named "Queen Mary 2".', "a ship named queen mary 2"),
    ("The 2nd and 3rd place winners.", "the 2nd and 3rd place winners"),
    ("A dog;a cat:and a bird.", "a dog a cat and a bird"),
    ("an (unusual) view", "an -lrb- unusual -rrb- view"),
    ("A man's shadow...", "a man 's shadow"),
    ("A DOG RUNNING IN THE PARK.", "a dog running in the park"),
    ("A  man   with   extra   spaces .", "a man with extra spaces"),
    ("A\tman with a tab.", "a man with a tab"),
    ("A soft\xadhyphen and a non breaking space.", "a softhyphen and a non breaking space"),
    ("Über straße Zürich Ångström.", "über straße zürich ångström"),
    ("日本 の 電車 and a Москва street.", "日本 の 電車 and a москва street"),
    ("Ω and µm and ± and × signs.", "ω and µm and ± and × signs"),
    ("Fig. 3 shows no. 5 of the pp. 10 set.", "fig. 3 shows no. 5 of the pp. 10 set"),
    ("The 1st-ever 5-star hotel.", "the 1st-ever 5-star hotel"),
    ("O'Neill and d'Artagnan at McDonald's.", "o'neill and d'artagnan at mcdonald 's"),
    ("rock'n'roll and 'em and ol' boys.", "rock 'n' roll and 'em and ol' boys"),
    ("C'mon y'know it's li'l.", "c'mon y' know it 's li'l"),
    ("There is a #1 hit and a #hashtag.", "there is a # 1 hit and a #hashtag"),
    ("...and then it ended.", "and then it ended"),
    ('"', ""),
    ("''", ""),
    ("( )", "-lrb- -rrb-"),
    ("2\xa01/2 cups and x\xa0y and a \xa0 b", "2\xa01/2 cups and x y and a b"),
    ("A smiley 😀 and a snowman ☃ here", "a smiley and a snowman ☃ here"),
    ("I.", "i"),
    ("A man in a hat. The end", "a man in a hat the end"),
    ("Fig. 2 and then no.", "fig. 2 and then no."),
    ("5 dogs run.", "5 dogs run"),
    ("Six dots......2 or ......a or .......", "six dots .2 or a or"),
    ("Mail me@example.com\u3000", "mail me@example.com"),
]


def test_tricky_cases_as_one_batch() -> None:
    tokenized = tokenize_corpus({index: [caption] for index, (caption, _) in enumerate(TRICKY)})
    got = [tokenized[index][0] for index in range(len(TRICKY))]
    assert got == [expected for _, expected in TRICKY]


@pytest.mark.java
def test_tricky_cases_match_the_java_tokenizer(java_ptb_tokenizer) -> None:
    captions = [caption for caption, _ in TRICKY]
    java = java_ptb_tokenizer(captions)
    assert java == [expected.split(" ") if expected else [] for _, expected in TRICKY]


@pytest.mark.parametrize(
    ("caption", "tokens"),
    [
        ("I don't know.", ["i", "do", "n't", "know"]),
        ("The dogs' bowls", ["the", "dogs", "bowls"]),
        ("“Hi,” she said", ["hi", "she", "said"]),
        ("(a) [b] {c}", ["-lrb-", "a", "-rrb-", "-lsb-", "b", "-rsb-", "-lcb-", "c", "-rcb-"]),
        ("", []),
        ("...", []),
        ("A man\non a bike", ["a", "man", "on", "a", "bike"]),
    ],
)
def test_single_captions(caption: str, tokens: list[str]) -> None:
    assert ptb_tokenize(caption) == tokens


def test_next_caption_decides_a_final_single_letter() -> None:
    # The Java lexer reads past the line end: "c." before a sentence opener is the letter plus a period.
    assert ptb_tokenize("vitamin c.", next_caption="A dog runs") == ["vitamin", "c"]
    assert ptb_tokenize("vitamin c.", next_caption="a dog runs") == ["vitamin", "c."]
    assert ptb_tokenize("vitamin c.", next_caption=None) == ["vitamin", "c."]
    assert ptb_tokenize("a box, no.", next_caption="5 dogs") == ["a", "box", "no."]
    assert ptb_tokenize("a box, no.", next_caption="five dogs") == ["a", "box", "no"]
    # The opener must be followed by a space or a line break: one more caption in the batch supplies it.
    assert ptb_tokenize("a photo of A.", next_caption="A\ndog") == ["a", "photo", "of", "a"]
    assert ptb_tokenize("a photo of A.", next_caption="A") == ["a", "photo", "of", "a."]
    batch = tokenize_corpus({1: ["a photo of A."], 2: ["A"], 3: ["dog"]})
    assert batch[1] == ["a photo of a"]


def test_rules_name_only_special_characters() -> None:
    # Characters outside SPECIAL are replaced by class representatives before lexing, so no rule may name one.
    allowed = set(_ptb_rules.SPECIAL) | {_ptb_rules.REP_LETTER, _ptb_rules.REP_MARK, _ptb_rules.REP_DIGIT}
    escape = re.compile(r"\\u([0-9a-fA-F]{4})(?:-\\u([0-9a-fA-F]{4}))?")
    named = set()
    for rule in _ptb_rules.RULES:
        for text in (rule.first, rule.pattern, rule.context or ""):
            for low, high in escape.findall(text):
                named |= {chr(code) for code in range(int(low, 16), int(high or low, 16) + 1)}
            named |= {char for char in text if ord(char) >= 0x80}
    assert named <= allowed, sorted(named - allowed)
    assert len(named) > 50  # the scan does see the escapes


@pytest.mark.realdata
def test_all_fakecap_captions_equal_pycocoevalcap_output(fakecap, fakecap_tokenized) -> None:
    expected_refs, expected_results = fakecap_tokenized
    annotations = json.loads((fakecap / "captions_val2014_subset1000.json").read_text())["annotations"]
    references: dict[str, list[str]] = defaultdict(list)
    for annotation in annotations:
        references[str(annotation["image_id"])].append(annotation["caption"])
    results = {
        str(r["image_id"]): [r["caption"]]
        for r in json.loads((fakecap / "captions_val2014_fakecap_results.json").read_text())
    }
    got_refs = tokenize_corpus({key: references[key] for key in expected_refs})
    got_results = tokenize_corpus({key: results[key] for key in expected_results})
    checked = 0
    for key, expected in expected_refs.items():
        assert got_refs[key] == expected, key
        checked += len(expected)
    for key, expected in expected_results.items():
        assert got_results[key] == [expected], key
        checked += 1
    assert checked == 6005


def test_scoring_imports_no_torch() -> None:
    code = (
        "import sys, mmtrain.metrics.evaluate, mmtrain.metrics; mmtrain.metrics.CiderD; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
