"""Child seeds: reproducible, distinct for distinct keys (including keys with a long common prefix)."""

from __future__ import annotations

from rareflow.seeding import derive_seed


def test_child_seeds_are_reproducible_and_distinct() -> None:
    assert derive_seed(0, "gbdt") == derive_seed(0, "gbdt")
    keys = ["flow-init-0", "flow-init-1", "flow-init-0-0", "flow-init-0-1", "split-b", "split-r", "flow", "", 3]
    seeds = [derive_seed(7, k) for k in keys]
    assert len(set(seeds)) == len(keys)
    assert derive_seed(7, "flow") != derive_seed(8, "flow")
    assert all(0 <= s < 2**31 - 1 for s in seeds)
