"""recovery/stores/names.py: a name over the file name limit keeps a readable head and a hash of the whole
name, so it fits and two names never become one; temp file names are short whatever they stand beside."""

import os

from hypothesis import given
from hypothesis import strategies as st

from recovery.stores.names import HASH_MARK, NAME_MAX, fitted, head, temp_beside


def test_a_name_that_fits_is_kept_and_a_longer_one_keeps_its_head():
    assert fitted("ckpt-3.index") == "ckpt-3.index"
    exact = "a" * NAME_MAX
    assert fitted(exact) == exact
    longer = fitted(exact + "b")
    assert len(longer.encode()) <= NAME_MAX and longer.startswith("a" * 200) and HASH_MARK in longer
    assert fitted("x" * 300, room=100) != fitted("x" * 301, room=100)


def test_a_head_is_cut_between_characters_and_never_inside_an_escape():
    assert head("üüü", 5) == "üü"                       # 2 bytes each: never half a character
    assert head("abc%2F", 5) == head("abc%2F", 4) == "abc"
    assert head("abc%2F", 6) == "abc%2F"


@given(st.lists(st.text(alphabet=st.sampled_from("aü%2F日-x"), min_size=100, max_size=400), min_size=2, max_size=2,
                unique=True), st.integers(min_value=60, max_value=NAME_MAX))
def test_fitted_names_fit_and_stay_apart(names, room):
    first, second = (fitted(name, room) for name in names)
    assert first != second
    for name, made in zip(names, (first, second)):
        assert len(made.encode()) <= room
        assert made == name or HASH_MARK in made       # cut names carry the mark (percent-encoding never makes it)


def test_temp_names_are_short_hidden_and_new_each_time(tmp_path):
    target = str(tmp_path / ("ü" * 127 + ".index"))   # 254 bytes: any suffix would pass the limit
    first, second = temp_beside(target), temp_beside(target)
    assert first != second and os.path.dirname(first) == str(tmp_path)
    assert os.path.basename(first).startswith(".ü") and len(os.path.basename(first).encode()) < 120
