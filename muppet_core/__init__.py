"""Muppet: pre-finetuning as a pipeline (Aghajanyan et al., EMNLP 2021)."""

__version__ = "0.1.0"
