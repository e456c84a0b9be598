"""fusion=cross_attention into a Hugging Face causal LM: GPT-2 (tiny_lm) gets new cross-attention layers; an LM
whose architecture has none is refused in one line."""

from __future__ import annotations

import functools

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.models.fusion.cross_attention import CrossAttentionFusion
from mmtrain.models.generation import DecodingConfig, generate

pytest.importorskip("peft")
from mmtrain.models.hf_decoder import HFCausalLMDecoder  # noqa: E402
from tests.models.test_hf_decoder import _captioner, _decoder, forced_and_cached  # noqa: E402

CROSS = functools.partial(CrossAttentionFusion)


def _is_cross(name: str) -> bool:
    return ".crossattention." in name or ".ln_cross_attn." in name  # GPT-2's names for its cross-attention layers


@pytest.mark.parametrize("group", [1, 3])
def test_teacher_forcing_equals_kv_cached_steps_with_cross_attention(tiny_lm, group):
    decoder = _decoder(tiny_lm, cross_attention=True)
    torch.manual_seed(1)
    memory = torch.randn(2, 5, decoder.d_model)  # (B, M, D)
    image = FusionOutput(memory=memory, prefix=None, prefix_bidirectional=False)
    ids = torch.randint(1, 100, (2 * group, 6))  # (B*G, T)
    full, steps, cache = forced_and_cached(decoder, ids, image, group)  # (B*G, T, V), (B*G, T-1, V)
    with torch.no_grad():
        other = decoder(ids, image._replace(memory=memory.flip(0)), group=group)
    assert not torch.allclose(full, other)  # the text reads the memory
    torch.testing.assert_close(steps, full[:, 1:], rtol=1e-4, atol=1e-5)
    assert cache.length == 6 and cache.memory.shape == (2 * group, 5, decoder.d_model)


@pytest.mark.parametrize("strategy", ["beam", "greedy"])
def test_decoding_with_cross_attention_is_batch_independent(tiny_lm, strategy):
    """An image decodes to the same tokens alone and in a batch (beam search reorders the memory with the cache;
    greedy runs two rows per image)."""
    captioner = _captioner(tiny_lm, fusion=CROSS)
    assert captioner.decoder.cross_attention and captioner.fusion.proj[1].out_features == captioner.decoder.d_model
    images = torch.randn(3, 3, 32, 32)
    config = DecodingConfig(strategy=strategy, max_len=8, num_beams=3, no_repeat_ngram_size=2, num_return_sequences=2)
    batched = generate(captioner, images, config)
    alone = [generate(captioner, images[i : i + 1], config)[0] for i in range(3)]
    assert batched == alone
    assert all(len(seqs) == 2 and all(len(seq) <= 8 for seq in seqs) for seqs in batched)


def test_sampling_with_cross_attention_from_the_top_token_is_greedy(tiny_lm):
    captioner = _captioner(tiny_lm, fusion=CROSS)
    images = torch.randn(2, 3, 32, 32)
    greedy = generate(captioner, images, DecodingConfig(max_len=6))
    sampled = generate(captioner, images, DecodingConfig(strategy="sample", top_k=1, max_len=6, num_return_sequences=2))
    assert sampled == [[seqs[0], seqs[0]] for seqs in greedy]


def test_a_frozen_lm_keeps_its_weights_while_its_new_cross_attention_layers_and_the_fusion_train(tiny_lm):
    captioner = _captioner(tiny_lm, fusion=CROSS, freeze=True).train()
    trainable = {n for n, p in captioner.named_parameters() if p.requires_grad and n.startswith("decoder.")}
    assert trainable and all(_is_cross(n) for n in trainable)
    before = {k: v.clone() for k, v in captioner.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in captioner.parameters() if p.requires_grad], lr=0.1)
    ids = torch.randint(1, 100, (4, 6))
    logits = captioner(torch.randn(2, 3, 32, 32), ids, captions_per_image=2).logits  # (4, 6, V)
    torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    optimizer.step()
    after = captioner.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    lm_moved = {k for k in moved if k.startswith("decoder.")}
    assert lm_moved and all(_is_cross(k) for k in lm_moved)
    assert any(k.startswith("fusion.") for k in moved)


def test_with_lora_the_adapters_and_the_cross_attention_layers_train(tiny_lm):
    decoder = _decoder(tiny_lm, cross_attention=True, lora={"r": 4, "alpha": 8})
    trainable = [n for n, p in decoder.named_parameters() if p.requires_grad]
    assert any(".lora_" in n for n in trainable) and any(_is_cross(n) for n in trainable)
    assert all(".lora_" in n or _is_cross(n) for n in trainable)
    assert not [n for n in decoder.state_dict() if "base_layer" in n]


def test_an_lm_without_cross_attention_layers_is_refused_in_one_line_naming_the_fusions_that_work(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(UserError, match="use fusion=prefix, concat") as err:
        HFCausalLMDecoder(vocab_size=64, name_or_path=str(tmp_path / "llama"), cross_attention=True)
    assert "\n" not in str(err.value) and "LlamaForCausalLM" in str(err.value)
