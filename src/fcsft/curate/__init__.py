"""Curation: one trajectory per task, dedup, decontamination, family split, balance, general mix."""
