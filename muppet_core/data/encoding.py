"""Tokenization of canonical records into features, and dynamic-padding collation.

A feature is a dict of Python lists; ``collate`` pads a micro-batch only to its longest member.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from muppet_core.data.records import Record

TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
IGNORE_INDEX = -100  # label positions the loss skips


def _rows(encoded, n: int) -> list[dict[str, list[int]]]:
    keys = [k for k in TEXT_KEYS if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(n)]


def encode(
    family: str, records: list[Record], tokenizer, max_length: int, max_target_length: int = 64
) -> tuple[list[dict[str, Any]], int]:
    """Features for a family's records, and how many records were dropped.

    Span records whose answer does not fit in the first ``max_length`` tokens are dropped.
    Summaries are cut to ``max_target_length`` tokens; the decoder reads ``[CLS] summary`` and
    predicts ``summary [SEP]``.

    Besides the model's inputs and ``labels``, evaluation reads a few keys that ``collate`` ignores:
    span features carry ``context``, ``offsets`` (an int32 array of each token's character span in the
    context, -1 outside it) and ``answer_text``; summarization features carry the whole reference ``summary``.
    """
    if not records:
        return [], 0
    if family in ("classification", "regression"):
        pairs = records[0].text_b is not None
        enc = tokenizer(
            [r.text_a for r in records],
            [r.text_b or "" for r in records] if pairs else None,
            truncation=True,
            max_length=max_length,
        )
        return [{**row, "labels": r.label} for row, r in zip(_rows(enc, len(records)), records)], 0
    if family == "multiple_choice":
        firsts = [r.context for r in records for _ in r.choices]
        seconds = [c for r in records for c in r.choices]
        enc = _rows(tokenizer(firsts, seconds, truncation=True, max_length=max_length), len(seconds))
        features, i = [], 0
        for r in records:
            choices = enc[i : i + len(r.choices)]
            i += len(r.choices)
            features.append({"choices": choices, "labels": r.label})
        return features, 0
    if family == "span":
        return _encode_span(records, tokenizer, max_length)
    if family == "summarization":
        sources = _rows(tokenizer([r.document for r in records], truncation=True, max_length=max_length), len(records))
        targets = tokenizer([r.summary for r in records], truncation=True, max_length=max_target_length + 1)["input_ids"]
        start = decoder_start_id(tokenizer)
        return [
            {**src, "decoder_input_ids": [start, *tgt[1:-1]], "labels": tgt[1:], "summary": r.summary}
            for src, tgt, r in zip(sources, targets, records)
        ], 0
    raise ValueError(f"cannot encode family '{family}'")


def decoder_start_id(tokenizer) -> int:
    """The token the summarization decoder starts from ([CLS], or <s>)."""
    return tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id


def decoder_stop_id(tokenizer) -> int:
    """The token that ends a summary ([SEP], or </s>): the last token the tokenizer appends."""
    return tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id


def _encode_span(records, tokenizer, max_length: int):
    enc = tokenizer(
        [r.question for r in records],
        [r.context for r in records],
        truncation="only_second",
        max_length=max_length,
        return_offsets_mapping=True,
    )
    features, dropped = [], 0
    for i, r in enumerate(records):
        start_char, end_char = r.answer_start, r.answer_start + len(r.answer_text)
        seq_ids, offsets = enc.sequence_ids(i), enc["offset_mapping"][i]
        start_tok = end_tok = None
        for t, (sid, (a, b)) in enumerate(zip(seq_ids, offsets)):
            if sid != 1:
                continue
            if start_tok is None and a <= start_char < b:
                start_tok = t
            if a < end_char <= b:
                end_tok = t
        if start_tok is None or end_tok is None or end_tok < start_tok:
            dropped += 1
            continue
        row = {k: enc[k][i] for k in TEXT_KEYS if k in enc}
        context_offsets = np.array([o if sid == 1 else (-1, -1) for sid, o in zip(seq_ids, offsets)], dtype=np.int32)
        features.append(
            {**row, "labels": [start_tok, end_tok], "context": r.context, "offsets": context_offsets, "answer_text": r.answer_text}
        )
    return features, dropped


def _pad(rows: list[list[int]], value: int, length: int) -> list[list[int]]:
    return [row + [value] * (length - len(row)) for row in rows]


def _pad_text(rows: list[dict[str, list[int]]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    out = {}
    for key in TEXT_KEYS:
        if key in rows[0]:
            value = pad_id if key == "input_ids" else 0
            out[key] = torch.tensor(_pad([r[key] for r in rows], value, length), dtype=torch.long)
    return out


def collate(family: str, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Tensors for one micro-batch, padded to its longest sequence (and most choices)."""
    if family == "multiple_choice":
        n_choices = max(len(f["choices"]) for f in features)
        length = max(len(c["input_ids"]) for f in features for c in f["choices"])
        filler = {k: [pad_id if k == "input_ids" else 0] for k in features[0]["choices"][0]}
        flat, mask = [], []
        for f in features:
            extra = n_choices - len(f["choices"])
            flat.extend(f["choices"] + [filler] * extra)
            mask.append([True] * len(f["choices"]) + [False] * extra)
        batch = {k: v.view(len(features), n_choices, length) for k, v in _pad_text(flat, pad_id, length).items()}
        batch["choice_mask"] = torch.tensor(mask)
    elif family == "summarization":
        batch = _pad_text(features, pad_id, max(len(f["input_ids"]) for f in features))
        target = max(len(f["labels"]) for f in features)
        batch["decoder_input_ids"] = torch.tensor(_pad([f["decoder_input_ids"] for f in features], pad_id, target))
        batch["decoder_attention_mask"] = torch.tensor(_pad([[1] * len(f["decoder_input_ids"]) for f in features], 0, target))
        batch["labels"] = torch.tensor(_pad([f["labels"] for f in features], IGNORE_INDEX, target))
        return batch
    else:
        length = max(len(f["input_ids"]) for f in features)
        batch = _pad_text(features, pad_id, length)
    labels = [f["labels"] for f in features]
    batch["labels"] = torch.tensor(labels, dtype=torch.float if family == "regression" else torch.long)
    return batch
