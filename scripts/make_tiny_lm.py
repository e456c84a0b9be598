"""Write a random-init tiny GPT-2 and a tokenizer trained on a store's training captions, as a Hugging Face folder.

    python scripts/make_tiny_lm.py STORE OUT [--n-embd 128 --n-layer 2 --n-head 4 --vocab-size 512 --dropout 0]
    mmtrain fit experiment=shapes_hf_prefix data.store=STORE decoder.name_or_path=OUT

No download: the folder loads through from_pretrained like a hub model (docs/language-models.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmtrain.models.tiny_lm import write_tiny_lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a store written by mmtrain preprocess")
    parser.add_argument("out", type=Path, help="the folder to write")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.0)
    args = parser.parse_args()
    references = json.loads((args.store / "references_train.json").read_text(encoding="utf-8"))
    captions = [ann["caption"] for ann in references["annotations"]]
    write_tiny_lm(
        captions,
        args.out,
        vocab_size=args.vocab_size,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        dropout=args.dropout,
    )
    print(json.dumps({"out": str(args.out), "captions": len(captions)}))


if __name__ == "__main__":
    main()
