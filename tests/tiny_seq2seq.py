"""Tiny random BART and T5 backbones, each with a small tokenizer of its kind trained here on real text.

Nothing is downloaded: a byte-level BPE with BART's special tokens and its ``<s> A </s></s> B </s>``
layout stands in for BART's tokenizer, a unigram model with T5's ``<pad>``, ``</s>``, ``<unk>`` and
its ``A </s> B </s>`` layout (no token before the text) for T5's sentencepiece one.
"""

from __future__ import annotations

import json
from pathlib import Path

VOCAB = 1000
DOCUMENTS = 200  # XSum articles the tokenizers learn from


def _texts(mirror: str) -> list[str]:
    with open(Path(mirror, "xsum", "test.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line)["document"] for _, line in zip(range(DOCUMENTS), fh)]


def bart_tokenizer(texts: list[str]):
    """A fast tokenizer laid out as BART's: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


def t5_tokenizer(texts: list[str]):
    """A fast tokenizer laid out as T5's: <pad>=0, </s>=1, <unk>=2, nothing before the text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def save_tiny_seq2seq(kind: str, path: Path, mirror: str) -> str:
    """A 2+2-layer random ``kind`` (``bart`` or ``t5``, width 32) and its tokenizer, saved as safetensors in ``path``."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    texts = _texts(mirror)
    if kind == "bart":
        tokenizer = bart_tokenizer(texts)
        config = BartConfig(
            vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=256,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        )
        model = BartForConditionalGeneration(config)
    else:
        tokenizer = t5_tokenizer(texts)
        config = T5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)
