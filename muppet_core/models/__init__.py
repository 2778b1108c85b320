"""Backbone loading, heads and the multi-task model (each family's loss is in muppet_core.families)."""
