"""Scoring: read the option a reply commits to; option-order control (circular evaluation, letter bias)."""

from .circular import aggregate_circular, base_item_id, expand_rotations, letter_bias, rotations
from .extract import extract_choice, extract_choice_with_rule

__all__ = ["extract_choice", "extract_choice_with_rule", "rotations", "expand_rotations", "aggregate_circular",
           "letter_bias", "base_item_id"]
