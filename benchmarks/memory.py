"""Episodic-memory micro-benchmark: read and write times, exact vs annoy, and annoy's recall.

Keys are 32-d embeddings drawn around 50 cluster centres (hyper-states cluster, paper Fig. 15), spread
over the actions of the PPO grid (81). For each memory size the script times

- ``read_all`` (Q of every action for one key: what ``EpisodicAgent.act`` does),
- ``update`` of one learning episode (16 kept steps, as a PPO phase of 160 steps with writes every 10),
  including the index rebuild it causes,

and, for annoy, the recall of the 3 nearest neighbours against the exact search.

    python benchmarks/memory.py
    python benchmarks/memory.py --sizes 1000 10000 --n-trees 10 --search-k 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hypergym.agents.memory import EpisodicMemory


def make_data(n: int, n_actions: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(scale=3.0, size=(50, dim))
    keys = centers[rng.integers(50, size=n)] + rng.normal(scale=0.5, size=(n, dim))
    return keys.astype(np.float32), rng.integers(n_actions, size=n)


def filled(index: str, keys: np.ndarray, actions: np.ndarray, n_actions: int, **kwargs) -> EpisodicMemory:
    memory = EpisodicMemory(n_actions, keys.shape[1], capacity=len(keys) + 1000, index=index, index_kwargs=kwargs)
    memory.update(keys, actions.tolist(), np.zeros(len(keys)).tolist())
    memory.read_all(keys[0])  # build the index
    return memory


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for i in range(repeats):
        fn(i)
    return (time.perf_counter() - start) / repeats * 1e3


def measure(memory: EpisodicMemory, queries: np.ndarray, episode_keys: np.ndarray, episode_actions: np.ndarray):
    """Milliseconds per ``read_all`` and per one-episode ``update`` (with the rebuild it causes)."""
    read = timed(lambda i: memory.read_all(queries[i % len(queries)]), len(queries))

    def write(i: int) -> None:
        s = slice(16 * i, 16 * (i + 1))
        memory.update(episode_keys[s], episode_actions[s].tolist(), np.ones(16).tolist())
        memory.read_all(queries[0])  # the next act pays the rebuild

    return read, timed(write, len(episode_keys) // 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--actions", type=int, default=81)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--n-trees", type=int, default=10)
    parser.add_argument("--search-k", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    annoy_kwargs = {"n_trees": args.n_trees, "search_k": args.search_k}
    print(f"{args.actions} actions, {args.dim}-d keys; annoy n_trees={args.n_trees}, search_k={args.search_k}")
    print(f"{'entries':>8s} {'index':>6s} {'read_all ms':>12s} {'update ms':>10s} {'recall@3':>9s}")
    for n in args.sizes:
        keys, actions = make_data(n, args.actions, args.dim, rng)
        queries = keys[rng.integers(n, size=args.queries)] + rng.normal(scale=0.5, size=(args.queries, args.dim))
        queries = queries.astype(np.float32)
        episode_keys, episode_actions = make_data(16 * 20, args.actions, args.dim, rng)
        exact = filled("exact", keys, actions, args.actions)
        for name, kwargs in (("exact", {}), ("annoy", annoy_kwargs)):
            memory = exact if name == "exact" else filled("annoy", keys, actions, args.actions, **kwargs)
            read, update = measure(memory, queries, episode_keys, episode_actions)
            recall = ""
            if name == "annoy":
                hits = total = 0
                for q in queries:
                    for a in rng.choice(args.actions, size=5, replace=False):
                        e, _ = exact._fresh_index().query(int(a), q, 3)
                        x, _ = memory._fresh_index().query(int(a), q, 3)
                        hits += len(set(e) & set(x))
                        total += len(e)
                recall = f"{hits / total:9.3f}"
            print(f"{n:8d} {name:>6s} {read:12.3f} {update:10.3f} {recall:>9s}", flush=True)


if __name__ == "__main__":
    main()
