from __future__ import annotations

import numpy as np
import pytest

from hypergym.agents.memory import EpisodicMemory

EPS = 1e-3


def sim(d):
    return 1.0 / (d + EPS)


def filled_memory(**kwargs):
    memory = EpisodicMemory(n_actions=2, key_dim=2, k=3, beta=0.5, **kwargs)
    keys = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    memory.update(keys, [0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0])
    return memory


def test_read_is_the_kernel_weighted_average_of_the_k_nearest():
    memory = filled_memory()
    x = np.array([0.0, 1.0])
    # nearest three: (0,0) d=1, (1,0) d=sqrt(2), (0,2) d=1; (5,5) is left out
    d = np.array([1.0, np.sqrt(2.0), 1.0])
    v = np.array([1.0, 2.0, 3.0])
    assert memory.read(x, 0) == pytest.approx((sim(d) * v).sum() / sim(d).sum())
    assert np.isnan(memory.read(x, 1))
    q = memory.read_all(x)
    assert q[0] == pytest.approx(memory.read(x, 0)) and np.isnan(q[1])


def test_exact_key_reads_its_neighbourhood_including_itself():
    memory = filled_memory()
    d = np.array([0.0, 1.0, 2.0])  # (0,0) itself, (1,0), (0,2)
    v = np.array([1.0, 2.0, 3.0])
    assert memory.read(np.array([0.0, 0.0]), 0) == pytest.approx((sim(d) * v).sum() / sim(d).sum())


def test_one_write_moves_exactly_the_k_nearest_slots_and_inserts_the_key():
    memory = filled_memory()
    before = memory.values[0].copy()
    x, g = np.array([0.0, 1.0]), 10.0
    memory.update(x[None], [0], [g])
    d = np.array([1.0, np.sqrt(2.0), 1.0])
    w = sim(d) / sim(d).sum()
    expected = before.copy()
    expected[:3] += 0.5 * w * (g - before[:3])
    np.testing.assert_allclose(memory.values[0][:4], expected)  # the 4th slot (5,5) is untouched
    assert memory.size(0) == 5
    np.testing.assert_array_equal(memory.keys[0][4], x)
    assert memory.values[0][4] == g
    assert memory.size(1) == 0


def test_writing_an_existing_key_updates_without_inserting():
    memory = filled_memory()
    memory.update(np.array([[1.0, 0.0]]), [0], [2.0])
    assert memory.size(0) == 4


def test_eviction_is_first_in_first_out_over_all_actions():
    memory = EpisodicMemory(n_actions=2, key_dim=1, capacity=3, k=1)
    memory.update(np.array([[0.0]]), [0], [0.0])
    memory.update(np.array([[10.0]]), [1], [1.0])
    memory.update(np.array([[20.0]]), [0], [2.0])
    memory.update(np.array([[30.0]]), [1], [3.0])  # evicts the first key (action 0, 0.0)
    assert len(memory) == 3
    np.testing.assert_array_equal(memory.keys[0].ravel(), [20.0])
    np.testing.assert_array_equal(memory.keys[1].ravel(), [10.0, 30.0])
    memory.update(np.array([[40.0]]), [0], [4.0])  # evicts (action 1, 10.0)
    np.testing.assert_array_equal(memory.keys[1].ravel(), [30.0])
    np.testing.assert_array_equal(memory.keys[0].ravel(), [20.0, 40.0])


def test_exact_and_annoy_find_the_same_neighbours_on_clustered_data():
    pytest.importorskip("annoy")
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5.0, size=(8, 16))
    keys = (centers[rng.integers(8, size=2000)] + rng.normal(scale=0.3, size=(2000, 16))).astype(np.float32)
    exact = EpisodicMemory(1, 16, capacity=5000, index="exact")
    approx = EpisodicMemory(1, 16, capacity=5000, index="annoy", index_kwargs={"n_trees": 10, "search_k": 4000})
    for memory in (exact, approx):
        memory.update(keys, [0] * len(keys), rng.normal(size=len(keys)))
    approx.values = exact.values  # same values, so any difference comes from the neighbours
    queries = centers[rng.integers(8, size=50)] + rng.normal(scale=0.3, size=(50, 16))
    hits = 0
    for q in queries.astype(np.float32):
        e, _ = exact._fresh_index().query(0, q, 3)
        a, _ = approx._fresh_index().query(0, q, 3)
        hits += set(e) == set(a)
    assert hits == len(queries)


def test_save_and_load_round_trip(tmp_path):
    memory = filled_memory()
    memory.save(tmp_path / "m.npz")
    other = EpisodicMemory(n_actions=2, key_dim=2, k=3, beta=0.5)
    other.load(tmp_path / "m.npz")
    x = np.array([0.3, 0.4])
    assert other.read(x, 0) == memory.read(x, 0)
    assert len(other) == len(memory)


def test_bad_arguments():
    with pytest.raises(ValueError, match="choose from"):
        EpisodicMemory(2, 2, index="faiss")
    with pytest.raises(ValueError, match="beta"):
        EpisodicMemory(2, 2, beta=0.0)
    memory = EpisodicMemory(2, 2)
    with pytest.raises(ValueError, match="outside"):
        memory.update(np.zeros((1, 2)), [2], [0.0])


@pytest.mark.parametrize("index", ["exact", "annoy"])
def test_read_all_agrees_with_read_of_each_action(index):
    if index == "annoy":
        pytest.importorskip("annoy")
    rng = np.random.default_rng(1)
    memory = EpisodicMemory(n_actions=5, key_dim=3, k=3, index=index)
    memory.update(rng.normal(size=(60, 3)), rng.integers(4, size=60).tolist(), rng.normal(size=60).tolist())
    for x in rng.normal(size=(10, 3)):
        q = memory.read_all(x)
        expected = [memory.read(x, a) for a in range(5)]
        np.testing.assert_allclose(q, expected)
        assert np.isnan(q[4])  # action 4 was never written
