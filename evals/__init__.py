"""Eval replays of historical tickets and the promotion gate."""
