"""The caption tokenizer: SentencePiece trained in memory."""

from __future__ import annotations

from mmtrain.tokens import Tokenizer, train_sentencepiece

CAPTIONS = [
    f"a {size} {colour} circle left of a {colour} square"
    for size in ("small", "large")
    for colour in ("red", "green", "blue", "yellow", "purple")
] * 20


def test_the_same_captions_give_the_same_tokenizer_bytes_and_no_file_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = train_sentencepiece(CAPTIONS, vocab_size=48)
    second = train_sentencepiece(list(CAPTIONS), vocab_size=48)
    assert first == second
    assert list(tmp_path.iterdir()) == []  # no .model / .vocab files left behind
    tokenizer = Tokenizer(first)
    assert tokenizer.vocab_size == 48
    assert tokenizer.decode(tokenizer.encode("a small red circle left of a red square")) == (
        "a small red circle left of a red square"
    )
    assert [tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id] == [0, 1, 2, 3]
