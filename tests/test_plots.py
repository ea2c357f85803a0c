from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from conftest import TINY_NET

from hypergym.plots import _smooth
from hypergym.tsne import collect_embeddings, main, plot_tsne

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_collect_embeddings_labels_every_step_with_its_phase_return():
    emb = collect_embeddings(
        "HyperRL-A2C-CartPole", seed=0, total_env_steps=400, updates_per_phase=5, policy_kwargs=TINY_NET, device="cpu"
    )
    n = len(emb.observations)
    assert n % 5 == 0 and n >= 5
    assert emb.observations.shape == (n, 32) and emb.hyper_returns.shape == (n,)
    # Each learning episode (5 steps) shares one hyper-return.
    for k in range(0, n, 5):
        assert len(set(emb.hyper_returns[k : k + 5].tolist())) == 1
    assert np.all(np.diff(emb.env_steps) >= 0)


def test_plot_tsne_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    from hypergym.tsne import Embeddings

    emb = Embeddings(rng.normal(size=(40, 8)), rng.normal(size=40), np.arange(40), None)
    out = plot_tsne([("a", emb), ("b", emb)], tmp_path / "sub" / "t.png", title="t")
    assert out.read_bytes()[:8] == PNG_SIGNATURE and out.stat().st_size > 5000


def test_command_line_produces_the_picture(tmp_path, capsys):
    out = tmp_path / "tsne.png"
    main(["HyperRL-A2C-CartPole", "--steps", "400", "--obs-modes", "vae", "--out", str(out)])
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert "wrote" in capsys.readouterr().out


def test_smooth_is_the_trailing_mean_of_the_non_missing_points():
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    y[rng.random(300) < 0.3] = np.nan
    y[10:40] = np.nan  # a gap longer than the window: NaN there, not 0
    window = 7
    expected = np.full(len(y), np.nan)
    for i in range(len(y)):
        chunk = y[max(0, i - window + 1) : i + 1]
        chunk = chunk[~np.isnan(chunk)]
        if len(chunk):
            expected[i] = chunk.mean()
    got = _smooth(y, window)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[30])
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-12, atol=1e-12)
    assert len(_smooth(np.array([]), 5)) == 0
