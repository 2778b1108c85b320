"""The plan's FLOPs formula against torch's own count, and a backbone's shape against its built model."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BartConfig, BartModel, RobertaConfig, RobertaModel

from muppet_core.planning.flops import training_flops
from muppet_core.planning.shapes import shape_of


def test_the_formula_counts_what_torch_counts_for_a_forward_and_backward():
    config = RobertaConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
                           max_position_embeddings=300, attn_implementation="eager")
    model = RobertaModel(config, add_pooling_layer=False)
    batch, length = 3, 200
    ids = torch.randint(5, 1000, (batch, length))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids).last_hidden_state.sum().backward()
    shape = shape_of(config.to_dict(), "test")
    predicted = training_flops(shape.layer_params, shape.layers, shape.hidden, batch * length, batch * length**2)
    # N counts biases and LayerNorm weights, which do no matrix work: the formula is a little above torch's count.
    assert predicted == pytest.approx(counter.get_total_flops(), rel=0.02)


@pytest.mark.parametrize("kind", ["roberta", "bart"])
def test_a_shape_counts_the_parameters_of_the_model_its_config_builds(kind):
    if kind == "roberta":
        config = RobertaConfig(vocab_size=500, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128)
        model = RobertaModel(config, add_pooling_layer=False)
        layers = sum(p.numel() for p in model.encoder.parameters())
    else:
        config = BartConfig(vocab_size=500, d_model=64, encoder_layers=2, decoder_layers=3, encoder_ffn_dim=128, decoder_ffn_dim=128,
                            encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=128)
        model = BartModel(config)
        layers = sum(p.numel() for stack in (model.encoder.layers, model.decoder.layers) for p in stack.parameters())
    shape = shape_of(config.to_dict(), "test")
    assert shape.layer_params == layers
    assert shape.params == pytest.approx(sum(p.numel() for p in model.parameters()), rel=0.02)


def test_a_t5_config_has_a_shape_close_to_its_models_parameter_count():
    """T5 names its sizes otherwise than BART (num_layers, d_ff, d_kv): the plan reads them."""
    from transformers import T5Config, T5Model

    from muppet_core.planning.shapes import shape_of

    config = T5Config(vocab_size=512, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=3, num_heads=4)
    shape = shape_of(config.to_dict(), "t5")
    counted = sum(p.numel() for p in T5Model(config).parameters())
    assert shape.seq2seq and shape.layers == 5 and abs(shape.params - counted) / counted < 0.02, (shape.params, counted)
