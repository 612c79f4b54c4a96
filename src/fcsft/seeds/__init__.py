"""Seed questions: import, mining from logs, and the statistics that warn about imbalance."""
