"""--shard K/N: parsing and the round-robin slice."""

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.shard import Shard, parse_shard


def test_round_robin_slices_cover_everything_once():
    items = list(range(11))
    slices = [parse_shard(f"{k}/3").split(items)[0] for k in (1, 2, 3)]
    assert slices == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(x for s in slices for x in s) == items


def test_split_returns_the_rest_in_order():
    mine, others = Shard(2, 2).split(["a", "b", "c", "d"])
    assert mine == ["b", "d"] and others == ["a", "c"]


def test_one_of_one_is_everything():
    assert Shard(1, 1).split([1, 2]) == ([1, 2], [])


@pytest.mark.parametrize("text, problem", [
    ("3/2", "K must be between 1 and N (2)"),
    ("0/2", "K must be between 1 and N (2)"),
    ("1/0", "N (the number of shards) must be at least 1"),
    ("a/b", "is not K/N"),
    ("1", "is not K/N"),
    ("-1/2", "is not K/N"),
    ("", "is not K/N"),
])
def test_bad_values_name_the_option(text, problem):
    with pytest.raises(UsageError) as e:
        parse_shard(text)
    assert str(e.value).startswith("--shard: ") and problem in str(e.value)


@pytest.mark.parametrize("argv, text", [
    (["run", "--shard", "3/2"], "--shard: '3/2': K must be between 1 and N (2)"),
    (["run", "--shard", "a/b"], "--shard: 'a/b' is not K/N"),
    (["run", "--jobs", "0"], "--jobs: '0' is not a whole number"),
    (["run", "--jobs", "two"], "--jobs: 'two' is not a whole number"),
])
def test_run_rejects_bad_values_in_one_line(capsys, argv, text):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and text in err and err.count("\n") == 1, err
