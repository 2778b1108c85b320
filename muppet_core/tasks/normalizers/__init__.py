"""Normalizers: one small function per dataset from a raw row to the canonical record of its family.

Each takes ``(row, spec)`` and returns a record, or None to drop the row (counted in the stats).
"""
