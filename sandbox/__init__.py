"""Loopback servers that stand in for outside systems in the demo, tests and replays."""
