"""A task id is exactly 24 lowercase hex characters: nothing before, nothing after (a trailing
newline passed the old `$` pattern)."""

import pytest

from darkroom.ids import is_task_id, new_task_id


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "0"])
def test_an_id_with_anything_after_it_is_not_an_id(suffix):
    assert is_task_id(new_task_id())
    assert not is_task_id(new_task_id() + suffix)


@pytest.mark.parametrize("prefix", ["\n", " ", "0"])
def test_an_id_with_anything_before_it_is_not_an_id(prefix):
    assert not is_task_id(prefix + new_task_id())
