"""Expansion: seeds become rewrites, variations and combinations, each keeping its lineage."""
