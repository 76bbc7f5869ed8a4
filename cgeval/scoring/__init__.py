"""Scoring: read the option a reply commits to."""

from .extract import extract_choice, extract_choice_with_rule

__all__ = ["extract_choice", "extract_choice_with_rule"]
