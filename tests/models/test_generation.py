"""Decoder KV cache and decoding strategies on tiny models."""

from __future__ import annotations

import functools

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.captioner import Captioner
from mmtrain.models.decoder import TransformerDecoder
from mmtrain.models.encoders import TimmEncoder
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.models.fusion.concat import ConcatFusion
from mmtrain.models.fusion.cross_attention import CrossAttentionFusion
from mmtrain.models.fusion.prefix import PrefixFusion
from mmtrain.models.fusion.qformer import QFormerFusion
from mmtrain.models.generation import DecodingConfig, generate
from mmtrain.models.research.decoder import ResearchDecoder
from mmtrain.tokens import EOS_ID

FUSIONS = {
    "cross_attention": functools.partial(CrossAttentionFusion),
    "prefix": functools.partial(PrefixFusion, prefix_len=4, num_heads=2, num_layers=1),
    "prefix_mlp": functools.partial(PrefixFusion, prefix_len=4, mapper="mlp"),
    "prefix_pooled_bidirectional": functools.partial(
        PrefixFusion, prefix_len=4, num_heads=2, num_layers=1, queries="pooled", bidirectional=True
    ),
    "prefix_resampler": functools.partial(PrefixFusion, prefix_len=4, num_heads=2, num_layers=1, mapper="resampler"),
    "prefix_merged": functools.partial(
        PrefixFusion, prefix_len=4, num_heads=2, num_layers=1, queries="pooled", merge=2
    ),
    "concat": functools.partial(ConcatFusion),
    "concat_merged": functools.partial(ConcatFusion, merge=2),
    "qformer": functools.partial(QFormerFusion, num_queries=4, num_heads=2, num_layers=1),
}
FUSIONS["concat_experts"] = FUSIONS["concat_merged"]
FUSIONS["prefix_experts"] = FUSIONS["prefix_pooled_bidirectional"]
FUSIONS["concat_mix_coords"] = FUSIONS["concat_merged"]
FUSIONS["cross_attention_mix_coords"] = FUSIONS["cross_attention"]
FUSIONS["prefix_mix_coords"] = FUSIONS["prefix_pooled_bidirectional"]
MIX_COORDS = {"token_mix": 3, "coord_readout": True}
DECODER_OPTIONS = {
    "concat_experts": {"prefix_experts": True},
    "prefix_experts": {"prefix_experts": True},
    "concat_mix_coords": {"prefix_experts": True, **MIX_COORDS},
    "cross_attention_mix_coords": MIX_COORDS,
    "prefix_mix_coords": {"prefix_experts": True, **MIX_COORDS},
}


def tiny_captioner(fusion: str = "cross_attention", vocab: int = 40) -> Captioner:
    torch.manual_seed(0)
    encoder = TimmEncoder(
        model_name="vit_tiny_patch16_224",
        img_size=32,
        model_kwargs={"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2},
    )
    decoder = functools.partial(
        ResearchDecoder if fusion in DECODER_OPTIONS else TransformerDecoder,
        d_model=32,
        num_layers=2,
        num_heads=2,
        dropout=0.0,
        max_len=64,
        **DECODER_OPTIONS.get(fusion, {}),
    )
    return Captioner(encoder=encoder, fusion=FUSIONS[fusion], decoder=decoder, vocab_size=vocab).eval()


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_incremental_decoding_equals_full_forward(fusion):
    """The KV-cached step path gives the same logits as teacher forcing, for every fusion."""
    model = tiny_captioner(fusion)
    images, ids = torch.randn(3, 3, 32, 32), torch.randint(4, 40, (6, 9))
    with torch.no_grad():
        full = model(images, ids, captions_per_image=2).logits  # (6, 9, V)
        first, cache = model.start(model.encode(images), ids[:, :1], 2)
        steps = [first] + [model.decoder.step(ids[:, t : t + 1], cache) for t in range(1, 9)]
    assert torch.allclose(full, torch.stack(steps, dim=1), atol=1e-5)


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_grouped_captions_equal_copied_images(fusion):
    """Two captions per image, with the image side computed once, equal the same rows with each image copied."""
    model = tiny_captioner(fusion)
    images, ids = torch.randn(2, 3, 32, 32), torch.randint(4, 40, (4, 7))
    with torch.no_grad():
        grouped = model(images, ids, captions_per_image=2).logits
        copied = model(images.repeat_interleave(2, dim=0), ids, captions_per_image=1).logits
    assert torch.allclose(grouped, copied, atol=1e-5)


def test_greedy_equals_beam_of_one():
    model = tiny_captioner()
    images = torch.randn(4, 3, 32, 32)
    greedy = generate(model, images, DecodingConfig(strategy="greedy", max_len=10))
    beam = generate(model, images, DecodingConfig(strategy="beam", num_beams=1, max_len=10, length_penalty=0.0))
    assert greedy == beam


@pytest.mark.parametrize("fusion", ["cross_attention", "concat_mix_coords"])
def test_beam_is_batch_independent(fusion):
    """An image gets the same beam result alone as in a batch."""
    model = tiny_captioner(fusion)
    images = torch.randn(3, 3, 32, 32)
    config = DecodingConfig(strategy="beam", num_beams=4, max_len=8, num_return_sequences=2)
    batched = generate(model, images, config)
    alone = [generate(model, images[i : i + 1], config)[0] for i in range(3)]
    assert batched == alone
    assert all(len(seqs) == 2 for seqs in batched)


@pytest.mark.parametrize("fusion", ["cross_attention", "concat_mix_coords"])
def test_beam_finds_sequences_at_least_as_likely_as_greedy(fusion):
    """Beam scores come from the cache (reordered each step, the token mixer's state with it); they must agree with
    teacher forcing, so beam never ends below greedy."""
    model = tiny_captioner(fusion)
    images = torch.randn(4, 3, 32, 32)

    def logprob(image: torch.Tensor, seq: list[int]) -> float:
        ids = torch.tensor([[2, *seq, EOS_ID]])
        with torch.no_grad():
            logits = model(image[None], ids[:, :-1]).logits.log_softmax(-1)
        return float(logits[0].gather(1, ids[0, 1:, None]).sum())

    greedy = generate(model, images, DecodingConfig(strategy="greedy", max_len=6, block_eos=False))
    beam = generate(model, images, DecodingConfig(strategy="beam", num_beams=5, max_len=6, length_penalty=0.0))
    for i in range(4):
        if len(greedy[i][0]) < 6 and len(beam[i][0]) < 6:  # both finished with eos
            assert logprob(images[i], beam[i][0]) >= logprob(images[i], greedy[i][0]) - 1e-4


def test_block_eos_and_min_len_control_length():
    model = tiny_captioner()
    images = torch.randn(2, 3, 32, 32)
    forced = generate(model, images, DecodingConfig(strategy="greedy", max_len=7, block_eos=True))
    assert all(len(seq) == 7 for seqs in forced for seq in seqs)
    beams = generate(model, images, DecodingConfig(strategy="beam", num_beams=3, max_len=9, min_len=5))
    assert all(len(seq) >= 5 for seqs in beams for seq in seqs)


def test_no_repeat_ngram_forbids_repeats():
    model = tiny_captioner()
    images = torch.randn(3, 3, 32, 32)
    for strategy in ("greedy", "beam"):
        out = generate(
            model, images, DecodingConfig(strategy=strategy, max_len=20, block_eos=True, no_repeat_ngram_size=2)
        )
        for seqs in out:
            for seq in seqs:
                bigrams = list(zip(seq, seq[1:], strict=False))
                assert len(bigrams) == len(set(bigrams)), seq


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    model = tiny_captioner()
    images = torch.randn(2, 3, 32, 32)
    config = DecodingConfig(strategy="sample", max_len=8, seed=3, num_return_sequences=3, temperature=1.5)
    assert generate(model, images, config) == generate(model, images, config)
    top1 = generate(model, images, DecodingConfig(strategy="sample", max_len=8, top_k=1))
    greedy = generate(model, images, DecodingConfig(strategy="greedy", max_len=8))
    assert top1 == greedy


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="decoding.strategy"):
        generate(tiny_captioner(), torch.randn(1, 3, 32, 32), DecodingConfig(strategy="nucleus"))


def test_pooled_prefix_queries_need_a_square_count():
    with pytest.raises(UserError, match="fusion.queries=pooled needs a square fusion.prefix_len"):
        PrefixFusion(in_dim=8, d_model=8, num_tokens=64, prefix_len=10, num_heads=2, queries="pooled")


def test_prefix_experts_need_a_prefix():
    decoder = functools.partial(ResearchDecoder, d_model=32, num_layers=1, num_heads=2, prefix_experts=True)
    encoder = TimmEncoder(model_name="resnet18", img_size=32, model_kwargs={"layers": [1, 1, 1, 1]})
    with pytest.raises(UserError, match="decoder.prefix_experts=true needs a prefix"):
        Captioner(encoder=encoder, fusion=FUSIONS["cross_attention"], decoder=decoder, vocab_size=40)


def test_prefix_experts_keep_the_text_weights_for_the_text():
    """With experts the image runs through its own weights and the text through the LM's: changing the text's MLP
    leaves the image's keys/values exactly as they were, changing the image's MLP moves them, and the text-only LM
    (no image) never reads an expert."""
    model = tiny_captioner("concat_experts")
    images, ids = torch.randn(2, 3, 32, 32), torch.randint(4, 40, (2, 6))
    first = model.decoder.layers[0]

    def image_keys() -> torch.Tensor:
        fused = model.encode(images)
        _, cache = model.start(fused, ids[:, :1], 1)
        return cache.self_kv[1][0][:, :, : fused.prefix.shape[1]]  # (B, H, P, dh): the second block's image keys

    with torch.no_grad():
        keys = image_keys()
        # A bias shift, not a shift of every weight: a LayerNorm's output sums to zero, so adding one constant to all
        # weights of the layer after it would change nothing.
        first.mlp[0].bias.add_(1.0)
        assert torch.equal(image_keys(), keys)
        text_only = model.decoder(ids)
        first.prefix_expert.mlp[0].bias.add_(1.0)
        moved = (image_keys() - keys).abs().max() / keys.abs().max()
        for layer in model.decoder.layers:
            layer.prefix_expert.self_attn.kv.weight.mul_(3.0)
        assert torch.equal(model.decoder(ids), text_only)
    assert moved > 0.01  # measured 0.31 of the largest key; float noise is below 1e-6


def test_last_block_skips_the_prefix_stream_and_every_parameter_gets_a_gradient():
    """The last block's image stream only lends keys/values: its expert has no MLP or queries, and a backward pass
    reaches every decoder and fusion parameter (DDP fails on parameters without a gradient)."""
    for fusion in ("concat_experts", "prefix_experts", "concat", "prefix_pooled_bidirectional"):
        model = tiny_captioner(fusion).train()
        last = model.decoder.layers[-1]
        if getattr(last, "prefix_expert", None) is not None:
            assert not hasattr(last.prefix_expert.self_attn, "q") and not hasattr(last.prefix_expert, "mlp")
        images, ids = torch.randn(2, 3, 32, 32), torch.randint(4, 40, (4, 6))
        model(images, ids, captions_per_image=2).logits.square().mean().backward()
        for name, p in [*model.decoder.named_parameters(), *model.fusion.named_parameters()]:
            assert p.grad is not None, f"{fusion}: {name} got no gradient"


def test_the_decoding_benchmarks_no_cache_baseline_decodes_what_the_kv_cache_decodes(monkeypatch):
    """``scripts/bench_caption.py`` times the KV cache against a decoder re-run over the whole prefix at every step;
    that baseline reaches into the decoder, so it is checked here against the cached path, greedy and beam."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_caption.py"
    spec = importlib.util.spec_from_file_location("bench_caption", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_caption", bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    from mmtrain.models.generation import decode

    model = tiny_captioner("cross_attention")
    baseline = bench.NoCacheCaptioner(model)
    with torch.no_grad():
        fused = model.encode(torch.randn(3, 3, 32, 32))
        for config in (
            DecodingConfig(strategy="greedy", max_len=8),
            DecodingConfig(strategy="beam", num_beams=3, max_len=8),
        ):
            assert decode(baseline, fused, 3, config) == decode(model, fused, 3, config)


def test_the_decoding_benchmarks_generate_peer_decodes_what_mmtrain_decodes_on_a_hf_lm(tmp_path):
    """``scripts/bench_caption.py`` times our decoding of a Hugging Face LM against the LM's own ``generate()`` fed
    the same prefix embeddings; the speed ratio only means something if both give the same token ids."""
    pytest.importorskip("peft")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_caption_lm.py"
    spec = importlib.util.spec_from_file_location("bench_caption_lm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    folder = bench.write_lm(tmp_path / "lm", vocab=300, width=32, layers=2, heads=2, captions=300)
    torch.manual_seed(0)
    model = bench.build_captioner(folder, image_size=32, patch=8, d_model=32, layers=1, heads=2, prefix_len=4)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        for config in (
            DecodingConfig(strategy="greedy", max_len=8, block_eos=True),
            DecodingConfig(strategy="beam", num_beams=3, max_len=8, block_eos=True),
        ):
            ours = bench.ours_generate(model, images, config)
            assert [len(seq) for seq in ours] == [8, 8, 8]
            assert ours == bench.hf_generate(model, images, config).tolist()


@pytest.mark.parametrize("fusion", ["cross_attention", "concat"])
def test_coordinate_readout_follows_each_image_token_to_its_position(fusion):
    """With coord_readout the decoder reads where each image token lies: other coordinates give other logits, and
    for cross-attention moving tokens together with their coordinates changes nothing."""
    torch.manual_seed(0)
    xa = fusion == "cross_attention"
    decoder = ResearchDecoder(
        vocab_size=30, d_model=16, num_layers=2, num_heads=2, dropout=0.0, cross_attention=xa, coord_readout=True
    ).eval()
    ids, image = torch.randint(4, 30, (2, 5)), torch.randn(2, 9, 16)
    coords, perm = torch.rand(9, 2) * 2 - 1, torch.randperm(9)

    def run(tokens, where):
        memory, prefix = (tokens, None) if xa else (None, tokens)
        with torch.no_grad():
            return decoder(ids, FusionOutput(memory, prefix, prefix_bidirectional=not xa, coords=where))

    base = run(image, coords)
    assert not torch.allclose(run(image, coords[perm]), base, atol=1e-3)  # the readout is used
    assert torch.allclose(run(image, None), run(image, torch.zeros(9, 2)), atol=1e-6)  # no layout: reads zeros
    if xa:  # the decoder adds no positions of its own to the memory: the coordinates are all it knows of the layout
        assert torch.allclose(run(image[:, perm], coords[perm]), base, atol=1e-5)
        assert not torch.allclose(run(image[:, perm], coords), base, atol=1e-3)


def test_token_mix_lets_a_position_see_the_tokens_just_before_it_in_the_first_block():
    """The mixer is causal: a change to token t moves the first block's input at t..t+kernel-1 and nowhere earlier."""
    from mmtrain.models.research.spatial import TokenMix

    torch.manual_seed(0)
    mix = TokenMix(8, kernel=3)
    h = torch.randn(1, 6, 8)
    changed = h.clone()
    changed[0, 2] += 1.0
    with torch.no_grad():
        a, _ = mix(h, None)
        b, past = mix(changed, None)
    moved = (a - b).abs().sum(-1)[0]
    assert moved[:2].max() < 1e-6 and bool((moved[2:5] > 1e-3).all())
    assert torch.equal(past, changed[:, -2:])  # the cache keeps the last kernel-1 inputs


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_per_sample_prompts_decode_in_groups_exactly_as_one_pair_at_a_time(strategy):
    """Each (image, prompt) pair continues its own prompt; pairs sharing a prompt decode as one batch, and the
    results equal decoding every pair alone with that prompt as the model's fixed prompt."""
    from dataclasses import replace

    from mmtrain.models.generation import generate_prompted

    model = tiny_captioner()
    images = torch.randn(3, 3, 32, 32)
    prompts = [[(5, 6), (7,)], [(7,)], [(), (5, 6), (9, 9, 9)]]
    config = DecodingConfig(strategy=strategy, num_beams=3, max_len=6)
    with torch.no_grad():
        got = generate_prompted(model, images, prompts, config)
    expected = []
    for row, own in enumerate(prompts):
        expected.append([])
        for prompt in own:
            model.ids = replace(model.ids, prompt=prompt)
            expected[-1].append(generate(model, images[row : row + 1], config)[0])
    assert got == expected
