"""Helpers for testing fcsft and code built on it.

`fcsft.testing.fake_openai` is a real local OpenAI-compatible server with fault injection.
"""
