"""Prefect flows: thin wiring of muppet_core calls (no ML logic lives here)."""
