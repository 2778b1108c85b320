"""Loading from mirror or hub, record storage and checks, splitting and the data stage (each family's
record type and encoding are in muppet_core.families)."""
