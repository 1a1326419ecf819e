"""`path_segment`: any external id as one URL path segment."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from app.lib.urls import path_segment


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("user_7", "user_7"),
        ("a/b", "a%2Fb"),
        ("x?y", "x%3Fy"),
        ("h#1", "h%231"),
        ("pct%41", "pct%2541"),
        ("sp ace", "sp%20ace"),
        ("Émile", "%C3%89mile"),
        ("a&b=c", "a%26b%3Dc"),
    ],
)
def test_special_characters_are_percent_encoded(value: str, encoded: str) -> None:
    assert path_segment(value) == encoded
    assert unquote(path_segment(value)) == value
