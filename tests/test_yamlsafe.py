"""mvsearch.core.yamlsafe: the one YAML loader, and its bounds."""
import pytest

from mvsearch.core.errors import SpaceError
from mvsearch.core.limits import MAX_INT_DIGITS, MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_DEPTH
from mvsearch.core.yamlsafe import load, load_with_lines, read_text


def _error(text: str) -> str:
    with pytest.raises(SpaceError) as e:
        load(text, "f.yaml", SpaceError)
    return str(e.value)


def test_integers_are_decimal_only():
    assert load("a: 16\nb: 0x10\nc: 010\nd: 1_000\n", "f.yaml", SpaceError) == {"a": 16, "b": "0x10", "c": "010",
                                                                              "d": 1000}


def test_a_duplicate_key_is_refused_with_its_line_and_path():
    assert _error("a:\n  b: 1\n  b: 2\n") == "f.yaml:3: a.b: duplicate key; each key may appear once"


def test_nesting_is_bounded_before_python_recurses():
    assert "nesting deeper than 32 levels" in _error("x: " + "[" * 20_000 + "]" * 20_000)
    assert load("x: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1), "f.yaml", SpaceError) is not None


def test_an_alias_bomb_is_refused_quickly():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    assert "aliases expanded" in _error("\n".join(lines))


def test_aliases_are_counted_and_a_recursive_one_refused():
    ok = "a: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(MAX_YAML_ALIASES))
    assert len(load(ok, "f.yaml", SpaceError)) == MAX_YAML_ALIASES + 1
    assert "more than 100 aliases" in _error(ok + "one_more: *x\n")
    assert "nesting deeper" in _error("a: &x [*x]\n")


def test_an_integer_of_too_many_digits_is_one_error_not_pythons():
    assert f"more than {MAX_INT_DIGITS} digits" in _error("a: " + "9" * 5000)
    assert load("a: " + "9" * MAX_INT_DIGITS, "f.yaml", SpaceError) == {"a": int("9" * MAX_INT_DIGITS)}


def test_control_characters_and_python_tags_are_yaml_errors():
    assert "character 0x1b" in _error("a: \x1b[2J\n")
    assert "not valid YAML" in _error("!!python/object/apply:os.system ['true']\n")


def test_lines_of_key_paths():
    data, lines = load_with_lines("a:\n  b: [1, 2]\nc: 3\n", "f.yaml", SpaceError)
    assert data == {"a": {"b": [1, 2]}, "c": 3}
    assert lines[("a", "b")] == 2 and lines[("c",)] == 3


def test_read_text_bounds_size_and_encoding(tmp_path):
    (tmp_path / "big.yaml").write_text("#\n" * (MAX_YAML_BYTES // 2 + 1))
    with pytest.raises(SpaceError, match="larger than 1 MiB"):
        read_text(tmp_path / "big.yaml", SpaceError)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpaceError, match="not UTF-8 text"):
        read_text(tmp_path / "bin.yaml", SpaceError)
    with pytest.raises(SpaceError, match=r"'.*no\\nsuch': no such file"):
        read_text(tmp_path / "no\nsuch", SpaceError)
