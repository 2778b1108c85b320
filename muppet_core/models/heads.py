"""Task heads: one per classification dataset, one shared ranking head, one shared span head, and
for summarization a decoder warm-started from the encoder (an encoder backbone's; a seq2seq
backbone summarizes with its own decoder, see ``muppet_core.models.seq2seq``)."""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Dense-tanh-dropout-projection over a pooled sentence vector (also used for regression).

    Args:
        hidden_size: encoder width.
        num_outputs: classes (1 for regression, 1 for the ranking head's score).
        dropout: dropout before each projection.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    @classmethod
    def for_encoder(cls, encoder: nn.Module, num_outputs: int) -> ClassificationHead:
        """A head as wide as ``encoder``, with its hidden dropout (0.1 when its config names none)."""
        config = encoder.config
        return cls(config.hidden_size, num_outputs, getattr(config, "hidden_dropout_prob", 0.1))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(x))


class SpanHead(nn.Module):
    """Start and end logits for every token.

    Args:
        hidden_size: encoder width.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(hidden)


class DecoderHead(nn.Module):
    """A causal decoder with cross-attention over the encoder's states, warm-started from the encoder
    (as EncoderDecoderModel.from_encoder_decoder_pretrained does); its language-model head is the
    summarization "head".

    Args:
        encoder: the shared encoder, whose config and weights the decoder starts from.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        from transformers import AutoModelForCausalLM

        config = copy.deepcopy(encoder.config)
        config.is_decoder, config.add_cross_attention, config.tie_word_embeddings = True, True, False
        self.decoder = AutoModelForCausalLM.from_config(config)
        getattr(self.decoder, self.decoder.base_model_prefix).load_state_dict(encoder.state_dict(), strict=False)
        with torch.no_grad():
            self.decoder.get_output_embeddings().weight.copy_(encoder.get_input_embeddings().weight)

    def forward(self, decoder_input_ids, decoder_attention_mask, encoder_hidden, encoder_mask) -> torch.Tensor:
        return self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_hidden,
            encoder_attention_mask=encoder_mask,
        ).logits

    def logits(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, vocabulary] next-token logits for the batch's ``decoder_input_ids`` over ``model``'s encoder states."""
        return self(batch["decoder_input_ids"], batch["decoder_attention_mask"], model.encode(batch), batch["attention_mask"])

    def decode(self, model, batch: dict[str, torch.Tensor], start_id: int, stop_id: int, max_new_tokens: int, num_beams: int = 1) -> list[list[int]]:
        """Greedy output for a collated batch (see ``generate``), or beam search's with ``num_beams`` > 1 (see ``beam_search``)."""
        with torch.no_grad():
            hidden, mask = model.encode(batch), batch["attention_mask"]
            if num_beams == 1:
                return self.generate(hidden, mask, start_id, stop_id, max_new_tokens)
            return [self.beam_search(hidden[i : i + 1], mask[i : i + 1], start_id, stop_id, max_new_tokens, num_beams) for i in range(len(hidden))]

    @torch.no_grad()
    def beam_search(self, encoder_hidden, encoder_mask, start_id: int, stop_id: int, max_new_tokens: int, num_beams: int) -> list[int]:
        """Beam search for one row: each step keeps the ``num_beams`` unfinished hypotheses of highest
        summed log-probability; one that picks ``stop_id`` is finished. It stops once ``num_beams``
        are finished, or after ``max_new_tokens`` (the unfinished ones of that step count too). The answer is
        the hypothesis of highest log-probability per generated token (``stop_id`` included), as
        ``generate`` of Hugging Face ranks them with ``length_penalty`` 1.

        Returns:
            The best hypothesis' new token ids, without ``stop_id``.
        """
        live: list[tuple[list[int], float]] = [([], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(max_new_tokens):
            seqs = torch.tensor([[start_id, *tokens] for tokens, _ in live], device=encoder_hidden.device)
            n = len(live)
            logp = self(seqs, torch.ones_like(seqs), encoder_hidden.expand(n, -1, -1), encoder_mask.expand(n, -1))[:, -1].float().log_softmax(-1)
            total = logp + torch.tensor([score for _, score in live], device=logp.device).unsqueeze(1)
            scores, flat = total.flatten().topk(min(2 * num_beams, total.numel()))
            survivors = []
            for score, index in zip(scores.tolist(), flat.tolist()):
                beam, token = divmod(index, total.shape[1])
                tokens = [*live[beam][0], token]
                if token == stop_id:
                    finished.append((tokens[:-1], score / len(tokens)))
                elif len(survivors) < num_beams:
                    survivors.append((tokens, score))
            live = survivors
            if len(finished) >= num_beams or not live:
                break
        if not finished or (live and len(live[0][0]) == max_new_tokens):  # the last step's unfinished ones count too
            finished += [(tokens, score / max(len(tokens), 1)) for tokens, score in live]
        return max(finished, key=lambda hypothesis: hypothesis[1])[0]

    @torch.no_grad()
    def generate(self, encoder_hidden, encoder_mask, start_id: int, stop_id: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding from ``start_id``, one token a step over the decoder's key/value cache.

        Returns:
            Each row's new token ids, up to (without) its first ``stop_id``, at most ``max_new_tokens``.
        """
        params = inspect.signature(self.decoder.forward).parameters
        cache_key = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
        rows = encoder_hidden.shape[0]
        current = torch.full((rows, 1), start_id, dtype=torch.long, device=encoder_hidden.device)
        done = torch.zeros(rows, dtype=torch.bool, device=encoder_hidden.device)
        cache, steps = None, []
        for _ in range(max_new_tokens):
            out = self.decoder(
                input_ids=current, encoder_hidden_states=encoder_hidden, encoder_attention_mask=encoder_mask,
                use_cache=True, **{cache_key: cache},
            )
            cache, current = out[cache_key], out.logits[:, -1].argmax(-1, keepdim=True)
            steps.append(current.masked_fill(done.unsqueeze(1), stop_id))
            done |= current.squeeze(1) == stop_id
            if done.all():
                break
        tokens = torch.cat(steps, 1).tolist() if steps else [[] for _ in range(rows)]
        return [row[: row.index(stop_id)] if stop_id in row else row for row in tokens]
