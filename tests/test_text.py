"""mvsearch.core.text and mvsearch.core.limits: what reaches a terminal, and the bounds' messages."""
import pytest

from mvsearch.core.errors import MvsearchError
from mvsearch.core.limits import check_digits, check_int
from mvsearch.core.text import one_line, printable, quote, shorten


def test_printable_drops_escape_sequences_newlines_and_bidi_overrides():
    assert printable("a\x1b]0;title\x07b\nc\u202ed") == "a]0;titlebcd"
    assert printable("plain text") == "plain text"


def test_one_line_escapes_what_it_keeps():
    assert one_line("a\nb\x1b") == "a\\nb\\x1b"


def test_quote_keeps_a_path_on_one_line():
    assert quote("studies/x\ny.db") == "'studies/x\\ny.db'"


def test_shorten_cuts_long_values_and_huge_numbers():
    assert shorten("x" * 1000).endswith("... (1,000 characters)")
    assert shorten(10**5000) == "a number of more than 60 digits"
    assert shorten(42) == "42"


def test_check_int_names_the_rule_or_the_bound():
    assert check_int(5, "--n", 1, 10) == 5
    with pytest.raises(MvsearchError, match=r"--n: must be an integer in 1..10, got 0"):
        check_int(0, "--n", 1, 10)
    with pytest.raises(MvsearchError, match=r"--n: 11 exceeds mvsearch's bound of 10"):
        check_int(11, "--n", 1, 10)
    with pytest.raises(MvsearchError, match="must be an integer"):
        check_int(True, "--n", 1, 10)


def test_check_digits():
    assert check_digits("123", "x") == "123"
    with pytest.raises(MvsearchError, match="5,000 digits"):
        check_digits("9" * 5000, "x")
