"""What a run of a pipeline will cost, before it starts: ``muppet plan`` and the plan artifact of every run.

``estimate.plan_pipeline`` builds a ``Plan`` (per stage: datasets and rows, tokens, FLOPs, GPU-hours and wall time
at a stated MFU, memory per GPU, fine-tunes, store bytes, what the store already holds); ``render`` prints it as a
table, Markdown or JSON. Every figure says where it comes from: measured, stored, or a stated assumption.
"""
