"""The blocklist reads a term the way a person does: invisible characters, fullwidth letters,
case and Cyrillic or Greek look-alikes do not hide it (issue 14)."""

import pytest

from darkroom.safety import ContentPolicy

POLICY = ContentPolicy(["gore", "Bloodbath"])


@pytest.mark.parametrize(
    "prompt",
    [
        "some gore here",
        "some GORE here",
        "some go\u200bre here",  # zero-width space
        "some go\u200dre here",  # zero-width joiner
        "some g\ufeffore here",  # zero-width no-break space
        "some go\u00adre here",  # soft hyphen
        "some \uff47\uff4f\uff52\uff45 here",  # fullwidth
        "some \uff27\uff2f\uff32\uff25 here",  # fullwidth capitals
        "some g\u043er\u0435 here",  # Cyrillic о and е
        "some G\u041eR\u0415 here",  # Cyrillic О and Е
        "some g\u03bfre here",  # Greek ο
        "some \U0001d420\U0001d428\U0001d42b\U0001d41e here",  # mathematical bold
        "a BL\u041e\u041eDB\u0410TH",  # Cyrillic capitals in the second term
        "a blood\u200bbath",
    ],
)
def test_a_refused_term_is_found_through_each_disguise(prompt):
    assert POLICY.flags(prompt)


@pytest.mark.parametrize("prompt", ["gorgeous views", "a forgery", "bloodbaths", "gör e"])
def test_words_that_only_contain_or_resemble_a_term_pass(prompt):
    assert not POLICY.flags(prompt)


def test_a_term_written_with_look_alikes_in_the_settings_is_normalised_too():
    assert ContentPolicy(["g\u043ere"]).flags("much gore")
    assert ContentPolicy(["\uff47ore"]).flags("much GORE")


def test_no_terms_flags_nothing():
    assert not ContentPolicy([" ", "\u200b"]).flags("anything at all")
