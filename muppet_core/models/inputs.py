"""The token fields a tokenizer encodes and an encoder reads."""

TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
