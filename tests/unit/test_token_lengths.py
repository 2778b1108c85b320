"""The data stage's token-length statistics count what the tokenizer's own call encodes, whichever way
they are counted: for one task of every family, with BERT's, BART's (RoBERTa's byte-level BPE) and T5's tokenizers."""

from __future__ import annotations

import itertools

import pytest

from muppet_core.data.prepare import _token_counter, length_percentiles, normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.families import get_family
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task

TASKS = ["rte", "stsb", "commonsenseqa", "squad", "aeslc"]  # classification (pairs), regression, multiple choice, span, summarization
ROWS = 300


class Called:
    """A tokenizer that is only called, as a slow (Python) tokenizer is."""

    is_fast = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, *args, **kwargs):
        return self.tokenizer(*args, **kwargs)


@pytest.fixture(scope="module")
def tokenizers(minilm_path, tiny_bart, tiny_t5):
    from transformers import AutoTokenizer

    return {"bert": AutoTokenizer.from_pretrained(minilm_path), "bart": AutoTokenizer.from_pretrained(tiny_bart),  # BART's: RoBERTa's byte-level BPE
            "t5": AutoTokenizer.from_pretrained(tiny_t5)}


@pytest.fixture(scope="module")
def records(mirror):
    """The first ``ROWS`` rows of each task's first split, normalized."""
    found = {}
    for name in TASKS:
        spec = get_task(name)
        _, raw = raw_splits(spec, mirror, None)
        split, source_rows = next(iter(raw.items()))
        rows = list(itertools.islice(source_rows, ROWS))
        records, _ = normalize_rows(spec, split, rows, resolve(spec.normalizer))
        found[name] = (get_family(spec.family), records)
    return found


@pytest.mark.parametrize("kind", ["bert", "bart", "t5"])
def test_token_counts_equal_the_tokenizers_own_call(kind, tokenizers, records):
    tokenizer = tokenizers[kind]
    assert tokenizer.is_fast
    for name, (family, rows) in records.items():
        pairs = [family.model_inputs(r) for r in rows]
        counted = _token_counter(tokenizer)(pairs)
        called = _token_counter(Called(tokenizer))(pairs)
        assert counted == called, name
        assert length_percentiles(family, rows, tokenizer) == length_percentiles(family, rows, Called(tokenizer)), name
