"""Canonical examples, loading from mirror or hub, splitting, encoding and task mixing."""
