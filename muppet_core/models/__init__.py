"""Backbone loading, heads, the multi-task model and its losses."""
