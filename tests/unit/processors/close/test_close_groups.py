"""`processors.close.parallel.partition_groups`: how a close splits its partitions
among worker processes (the close lasts as long as its slowest worker)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processors.close.parallel import partition_groups


def test_round_robin_without_sizes() -> None:
    assert partition_groups([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert partition_groups([0, 1], 4) == [[0], [1]]
    assert partition_groups([], 3) == [[]]


def test_sizes_balance_the_load() -> None:
    sizes = {0: 260_000, 1: 240_000, 2: 270_000, 3: 230_000}
    # Round-robin would give {0, 2} = 530,000 against {1, 3} = 470,000.
    groups = partition_groups([0, 1, 2, 3], 2, sizes)
    assert sorted(sum(sizes[p] for p in g) for g in groups) == [500_000, 500_000]
    assert groups == [[2, 3], [0, 1]]


@given(
    st.dictionaries(st.integers(0, 40), st.integers(0, 10**6), min_size=1),
    st.integers(1, 6),
)
def test_every_partition_once_in_non_empty_ascending_groups(
    sizes: dict[int, int], workers: int
) -> None:
    parts = sorted(sizes)
    groups = partition_groups(parts, workers, sizes)
    assert sorted(p for g in groups for p in g) == parts
    assert len(groups) == min(workers, len(parts))
    assert all(g and g == sorted(g) for g in groups)
    # Greedy bound: no group exceeds the ideal share by more than the largest partition.
    loads = [sum(sizes[p] for p in g) for g in groups]
    assert max(loads) <= sum(sizes.values()) / len(groups) + max(sizes.values())
