"""The Hugging Face causal LM decoder on a tiny saved GPT-2 (tiny_lm), loaded through from_pretrained."""

from __future__ import annotations

import functools
import sys

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.captioner import Captioner
from mmtrain.models.encoders import TimmEncoder
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.models.fusion.prefix import PrefixFusion
from mmtrain.models.generation import DecodingConfig, generate
from mmtrain.tokens import HFTokenizer, TextIds, load_tokenizer

pytest.importorskip("peft")
from mmtrain.models.hf_decoder import HFCausalLMDecoder  # noqa: E402


def _decoder(lm, **kwargs) -> HFCausalLMDecoder:
    return HFCausalLMDecoder(vocab_size=HFTokenizer(lm).vocab_size, name_or_path=str(lm), **kwargs).eval()


def _captioner(lm, fusion=None, prompt: str = "", **decoder) -> Captioner:
    torch.manual_seed(0)
    encoder = TimmEncoder(
        model_name="vit_tiny_patch16_224",
        img_size=32,
        model_kwargs={"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2},
    )
    tokenizer = HFTokenizer(lm)
    captioner = Captioner(
        encoder=encoder,
        fusion=fusion or functools.partial(PrefixFusion, prefix_len=4, num_heads=2, num_layers=1),
        decoder=functools.partial(HFCausalLMDecoder, name_or_path=str(lm), **decoder),
        vocab_size=tokenizer.vocab_size,
    )
    captioner.ids = TextIds.of(tokenizer, prompt)
    return captioner.eval()


def test_the_tokenizer_has_gpt2s_ids_and_round_trips_through_its_checkpoint_bytes(tiny_lm):
    tokenizer = HFTokenizer(tiny_lm)
    assert tokenizer.bos_id == tokenizer.eos_id == tokenizer.pad_id  # GPT-2: one special token, no pad
    ids = tokenizer.encode("a red circle left of a blue square")
    assert ids[0] == ids[-1] == tokenizer.eos_id and len(ids) > 3
    assert tokenizer.decode(ids[1:]) == "a red circle left of a blue square"
    again = load_tokenizer(tokenizer.model_bytes)  # what loading a checkpoint does
    assert isinstance(again, HFTokenizer) and again.model_bytes == tokenizer.model_bytes
    assert again.encode("a green triangle", max_len=3) == [tokenizer.bos_id, ids[1], tokenizer.eos_id]


def forced_and_cached(decoder, ids, image, group):
    """Logits of ``ids`` (N, T) by teacher forcing (N, T, V), and from a 2-token prefill then one cached step per
    token (N, T-1, V, for positions 1..T-1), with the cache they leave."""
    with torch.no_grad():
        full = decoder(ids, image, group=group)  # (N, T, V)
        cache = decoder.new_cache()
        first = decoder(ids[:, :2], image, group=group, cache=cache)[:, -1]
        steps = [first] + [decoder.step(ids[:, t : t + 1], cache) for t in range(2, ids.shape[1])]
    return full, torch.stack(steps, 1), cache


@pytest.mark.parametrize("group,bidirectional", [(1, False), (3, False), (2, True)])
def test_teacher_forcing_equals_kv_cached_steps(tiny_lm, group, bidirectional):
    decoder = _decoder(tiny_lm)
    torch.manual_seed(1)
    prefix = torch.randn(2, 4, decoder.d_model)  # (B, P, D)
    image = FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=bidirectional)
    ids = torch.randint(1, 100, (2 * group, 6))  # (B*G, T)
    full, steps, cache = forced_and_cached(decoder, ids, image, group)
    torch.testing.assert_close(steps, full[:, 1:], rtol=1e-4, atol=1e-5)
    assert cache.length == 4 + 6


@pytest.mark.parametrize("strategy", ["beam", "greedy"])
def test_decoding_is_batch_independent(tiny_lm, strategy):
    """An image decodes to the same tokens alone and in a batch (beam search reorders the LM's own cache)."""
    captioner = _captioner(tiny_lm)
    images = torch.randn(3, 3, 32, 32)
    config = DecodingConfig(strategy=strategy, max_len=8, num_beams=3, no_repeat_ngram_size=2)
    batched = generate(captioner, images, config)
    alone = [generate(captioner, images[i : i + 1], config)[0] for i in range(3)]
    assert batched == alone
    assert all(len(seq) <= 8 for seqs in batched for seq in seqs)


def test_generation_starts_after_the_prompt_and_returns_the_continuation(tiny_lm):
    prompted, plain = _captioner(tiny_lm, prompt="a picture of"), _captioner(tiny_lm)
    prompt = list(prompted.ids.prompt)
    assert prompt and plain.ids.prompt == ()
    images = torch.randn(2, 3, 32, 32)
    fused = prompted.encode(images)
    got = generate(prompted, images, DecodingConfig(max_len=5, min_len=5))
    # The continuation's first token is the LM's argmax after bos + prompt, not after bos alone.
    start = torch.tensor([[prompted.ids.bos, *prompt]] * 2)
    with torch.no_grad():
        expected = prompted.decoder(start, fused)[:, -1].argmax(-1)  # (B,)
    assert [seqs[0][0] for seqs in got] == expected.tolist()
    assert all(len(seqs[0]) == 5 for seqs in got)


def test_the_captioner_keeps_the_loaded_lm_weights(tiny_lm):
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(str(tiny_lm)).state_dict()
    captioner = _captioner(tiny_lm)
    for name, tensor in saved.items():
        torch.testing.assert_close(captioner.decoder.lm.state_dict()[name], tensor, rtol=0, atol=0)


def test_lora_state_dict_names_are_those_without_lora_and_merging_keeps_the_outputs(tiny_lm):
    plain, adapted = _decoder(tiny_lm), _decoder(tiny_lm, lora={"r": 4, "alpha": 8})
    names = adapted.state_dict().keys()
    assert not [n for n in names if "base_layer" in n]
    assert set(plain.state_dict()) == {n for n in names if ".lora_" not in n}
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)  # peft starts B at zero: make the adapters do something
        ids = torch.randint(1, 100, (2, 5))
        image = FusionOutput(memory=None, prefix=torch.randn(2, 3, adapted.d_model), prefix_bidirectional=False)
        expected = adapted(ids, image)
        plain.load_state_dict(adapted.merged_state_dict())
        torch.testing.assert_close(plain(ids, image), expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(plain(ids, image), _decoder(tiny_lm)(ids, image))


def test_without_the_hf_extra_the_decoder_and_tokenizer_fail_in_one_line(tiny_lm, monkeypatch):
    for name in ("transformers", "tokenizers", "peft"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as when not installed
    for make in (lambda: HFTokenizer(tiny_lm), lambda: _decoder(tiny_lm)):
        with pytest.raises(UserError) as err:
            make()
        assert (
            str(err.value) == "decoder=hf_causal_lm needs transformers, tokenizers and peft: pip install 'mmtrain[hf]'"
        )


def test_an_offline_name_that_is_no_folder_and_not_cached_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    for make in (lambda: HFTokenizer("nobody/no-such-lm"), lambda: _decoder("nobody/no-such-lm")):
        with pytest.raises(UserError, match="not a folder and not in the Hugging Face cache") as err:
            make()
        assert "\n" not in str(err.value)


def test_the_shapes_hf_prefix_experiment_builds_on_a_local_lm_folder_and_captions(tiny_lm):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mmtrain.cli import CONFIG_DIR
    from mmtrain.models.build import build_captioner

    overrides = ["experiment=shapes_hf_prefix", f"decoder.name_or_path={tiny_lm}", "encoder.img_size=32"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=overrides)
    assert cfg.datamodule.tokenizer == str(tiny_lm)  # the LM's tokenizer, not the store's
    tokenizer = HFTokenizer(cfg.datamodule.tokenizer)
    model = build_captioner(OmegaConf.to_container(cfg.model, resolve=True), tokenizer.vocab_size).eval()
    model.ids = TextIds.of(tokenizer)
    captions = model.generate(torch.randn(2, 3, 32, 32), max_len=4)
    assert len(captions) == 2 and all(len(seq) <= 4 for seq in captions[0])


def test_a_bidirectional_prefix_sees_itself_and_the_text_stays_causal(tiny_lm):
    decoder = _decoder(tiny_lm)
    torch.manual_seed(2)
    prefix = torch.randn(1, 3, decoder.d_model)
    ids = torch.randint(1, 100, (1, 4))
    with torch.no_grad():
        causal = decoder(ids, FusionOutput(None, prefix, False))
        both = decoder(ids, FusionOutput(None, prefix, True))
        later = prefix.clone()
        later[:, -1] += 1.0  # the last prefix embedding changes
        moved = decoder(ids, FusionOutput(None, later, True))
        longer = decoder(torch.cat([ids, ids], 1), FusionOutput(None, prefix, True))
    assert not torch.allclose(causal, both)  # the prefix reads itself both ways
    assert not torch.allclose(both, moved)
    torch.testing.assert_close(longer[:, :4], both, rtol=1e-4, atol=1e-5)  # text never sees what comes after it


def test_per_sample_prompts_on_the_lm_decode_in_groups_as_one_pair_at_a_time(tiny_lm):
    """Rows that share a prompt are decoded together; each continues its own prompt, as it would alone."""
    from dataclasses import replace

    from mmtrain.models.generation import generate_prompted

    captioner = _captioner(tiny_lm)
    tokenizer = HFTokenizer(tiny_lm)
    what, where = tuple(tokenizer.tokens("what is it?")), tuple(tokenizer.tokens("where is the red"))
    images = torch.randn(2, 3, 32, 32)
    prompts = [[what, where], [where]]
    config = DecodingConfig(max_len=4, min_len=4)
    with torch.no_grad():
        got = generate_prompted(captioner, images, prompts, config)
        fused = captioner.encode(images)
        first = captioner.decoder(torch.tensor([[captioner.ids.bos, *where]] * 2), fused)[:, -1].argmax(-1)
    assert [got[0][1][0][0], got[1][0][0][0]] == first.tolist()  # the LM's next token after bos + its prompt
    for row, own in enumerate(prompts):
        for index, prompt in enumerate(own):
            captioner.ids = replace(captioner.ids, prompt=prompt)
            assert got[row][index] == generate(captioner, images[row : row + 1], config)[0]
