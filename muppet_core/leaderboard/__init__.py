"""Aggregation of result records into leaderboard tables."""
