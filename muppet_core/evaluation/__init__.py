"""Metrics and the result records every fine-tune writes and the leaderboard reads."""
