"""Throughput of HyperRLEnv (stepped with the default action) vs plain SB3 ``learn()``, side by side.

Both sides train the identical learner configuration (the registered preset, with the hyperparameter
values of ``env.unwrapped.space.default_action``) on the same task for the same env-step budget, on CPU.
SB3 is timed over ``learn()`` (each iteration: collect a rollout, train on it); hypergym from the end of
``reset(seed)`` (which collects the first rollout) to the end of the run, so that each update phase
(train on the rollout, collect the next) is the same work per env step. Runs alternate (SB3, hypergym,
SB3, hypergym, ...) so machine noise hits both alike; the ratio is hypergym's env steps per second over
SB3's, averaged over repeats.

    python benchmarks/overhead.py                       # PPO and A2C on HalfCheetah, 20k steps, 3 repeats
    python benchmarks/overhead.py --steps 50000 --repeats 5 --obs-modes random raw stats
    python benchmarks/overhead.py --ids HyperRL-PPO-HalfCheetah --obs-modes vae --vae-hidden 64
    python benchmarks/overhead.py --agents default episodic   # also EPGT choosing the hyperparameters
    python benchmarks/overhead.py --ids --acktr-ids HyperRL-ACKTR-HalfCheetah HyperRL-ACKTR-Pong

ACKTR has no SB3 counterpart: ``--acktr-ids`` compares hypergym's ACKTR with hypergym's A2C on the same
rollouts, update phase and network (its "A2C twin"), per env step and per update (``update_step`` only).

The encoder share is the fraction of the time inside ``env.step`` spent in ``encoder.encode`` and
``encoder.on_update`` (the VAE's training).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

import hypergym
from hypergym.agents import StaticAgent, Transition, make_agent
from hypergym.envs import make_task


def sb3_config(env: Any, device: str = "cpu") -> tuple[type, dict[str, Any]]:
    """SB3 algorithm class and kwargs identical to the env's learner with the default action applied."""
    hx = env.unwrapped
    cfg = hx.config
    values = {name: getattr(cfg, name) for name in hx.learner_class.supported_hyperparams()}
    values.update(hx.space.decode(hx.space.default_action))
    common = {
        "learning_rate": values["learning_rate"],
        "n_steps": cfg.n_steps,
        "gamma": values["gamma"],
        "gae_lambda": values["gae_lambda"],
        "ent_coef": values["ent_coef"],
        "vf_coef": values["vf_coef"],
        "max_grad_norm": values["max_grad_norm"],
        "normalize_advantage": cfg.normalize_advantage,
        "policy_kwargs": dict(cfg.policy_kwargs),
        "device": device,
        "verbose": 0,
    }
    if hx.algo == "PPO":
        return PPO, {
            **common,
            "batch_size": values["batch_size"],
            "n_epochs": values["n_epochs"],
            "clip_range": values["clip_range"],
        }
    return A2C, {**common, "use_rms_prop": cfg.use_rms_prop, "rms_prop_eps": cfg.rms_prop_eps}


def run_sb3(
    env_id: str,
    steps: int,
    seed: int,
    venv_factory: Callable[..., VecEnv] | None = None,
    device: str = "cpu",
    **overrides: Any,
) -> float:
    """SB3 ``learn()`` env steps per second on the preset's inner env (or on ``venv_factory(hx, seed)``)."""
    env = gym.make(env_id, device="cpu", **overrides)
    hx = env.unwrapped
    algo, kwargs = sb3_config(env, device)
    if venv_factory is None:
        venv = make_task(hx.task, n_envs=hx.n_envs, seed=seed, normalize=hx.normalize, gamma=hx.config.gamma)
    else:
        venv = venv_factory(hx, seed)
    policy = "CnnPolicy" if is_image_space(venv.observation_space) else "MlpPolicy"
    model = algo(policy, venv, seed=seed, **kwargs)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    n = model.num_timesteps
    venv.close()
    env.close()
    return n / elapsed


def _timed(obj: Any, name: str, clock: list[float]) -> None:
    """Wrap ``obj.name`` so that its wall time accumulates into ``clock[0]``."""
    inner = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            clock[0] += time.perf_counter() - t0

    setattr(obj, name, wrapper)


def cost_neutral_space(env_id: str) -> dict[str, Any]:
    """The preset's grid without the hyperparameters that change the amount of computation (b, epochs)."""
    grid = dict(hypergym.preset(env_id)["hyperparams"])
    return {name: values for name, values in grid.items() if name not in ("batch_size", "n_epochs")}


def run_hypergym(
    env_id: str,
    steps: int,
    seed: int,
    agent: str = "default",
    clocks: dict[str, float] | None = None,
    **overrides: Any,
) -> tuple[float, float]:
    """Env steps per second, and the encoder's share of the time spent in ``env.step``.

    ``clocks``, if given, receives the seconds spent in ``env.step`` (``"step"``) and in the learner's
    ``update_step`` (``"update"``: the training part, without rollouts and encoder), and the number of
    updates timed (``"updates"``).
    """
    if agent != "default":
        overrides.setdefault("hyperparams", cost_neutral_space(env_id))
    overrides.setdefault("device", "cpu")
    env = gym.make(env_id, total_env_steps=steps, **overrides)
    hyper_agent = StaticAgent(env) if agent == "default" else make_agent(agent, env, seed=seed)
    encoder_clock, step_clock, update_clock = [0.0], [0.0], [0.0]
    obs, info = env.reset(seed=seed)
    # Timing starts after the first rollout: from here each update phase is one training pass plus one
    # rollout, the same work per env step as one iteration of SB3's learn() (collect, then train).
    start, start_steps, start_updates = time.perf_counter(), info["env_steps"], info["updates"]
    encoder = env.unwrapped.encoder
    _timed(encoder, "encode", encoder_clock)
    _timed(encoder, "on_update", encoder_clock)
    _timed(env.unwrapped.learner, "update_step", update_clock)
    while True:
        action = hyper_agent.act(obs, info)
        t0 = time.perf_counter()
        next_obs, reward, terminated, truncated, info = env.step(action)
        step_clock[0] += time.perf_counter() - t0
        hyper_agent.observe(Transition(obs, action, reward, next_obs, terminated, truncated, info))
        obs = next_obs
        if info["run_finished"]:
            break
        if terminated or truncated:
            obs, info = env.reset()
    elapsed = time.perf_counter() - start
    n = info["env_steps"] - start_steps
    env.close()
    if clocks is not None:
        clocks["step"] = clocks.get("step", 0.0) + step_clock[0]
        clocks["update"] = clocks.get("update", 0.0) + update_clock[0]
        clocks["updates"] = clocks.get("updates", 0.0) + info["updates"] - start_updates
    return n / elapsed, encoder_clock[0] / step_clock[0]


def a2c_twin(acktr_id: str) -> tuple[str, dict[str, Any]]:
    """The A2C id and overrides that train like ``acktr_id`` (same task, rollout, U, network) but with RMSprop."""
    p = hypergym.preset(acktr_id)
    overrides = {
        name: p[name] for name in ("n_envs", "n_steps", "gamma", "gae_lambda", "updates_per_phase", "normalize")
    }
    if "cnn" in p:
        overrides["cnn"] = p["cnn"]
    return f"HyperRL-A2C-{p['task']}", overrides


def acktr_vs_a2c(acktr_ids: list[str], steps: int, repeats: int) -> None:
    """Hypergym ACKTR vs hypergym A2C with the same rollouts and network: env steps/s and update time."""
    print(
        f"\n{'ACKTR id (vs its A2C twin)':34s} {'A2C steps/s':>12s} {'ACKTR steps/s':>14s} {'ratio':>6s} "
        f"{'A2C ms/update':>14s} {'ACKTR ms/update':>16s} {'K-FAC overhead/update':>22s}"
    )
    for acktr_id in acktr_ids:
        a2c_id, a2c_overrides = a2c_twin(acktr_id)
        fps = {"A2C": 0.0, "ACKTR": 0.0}
        clocks: dict[str, dict[str, float]] = {"A2C": {}, "ACKTR": {}}
        for r in range(repeats):
            for algo, env_id, kw in (("A2C", a2c_id, a2c_overrides), ("ACKTR", acktr_id, {})):
                f, _ = run_hypergym(env_id, steps, seed=r, clocks=clocks[algo], obs_mode="random", **kw)
                fps[algo] += f / repeats
        ms = {algo: 1000 * clocks[algo]["update"] / clocks[algo]["updates"] for algo in fps}
        print(
            f"{acktr_id:34s} {fps['A2C']:12.0f} {fps['ACKTR']:14.0f} {fps['ACKTR'] / fps['A2C']:6.3f} "
            f"{ms['A2C']:14.1f} {ms['ACKTR']:16.1f} {ms['ACKTR'] / ms['A2C'] - 1:22.0%}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="*", default=["HyperRL-PPO-HalfCheetah", "HyperRL-A2C-HalfCheetah"])
    parser.add_argument("--steps", type=int, default=20_000, help="inner env steps per run (>= 20k for the README)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--obs-modes", nargs="+", default=["random", "vae"])
    parser.add_argument("--vae-hidden", type=int, default=None, help="VAE hidden width (default: the paper's D/4)")
    parser.add_argument(
        "--agents",
        nargs="+",
        default=["default"],
        choices=["default", "episodic", "dqn", "random"],
        help="default: the default action every step; episodic / dqn / random: that hyper-agent choosing over "
        "the cost-neutral grid (the preset's grid without batch_size / n_epochs, whose values change the "
        "compute per env step)",
    )
    parser.add_argument(
        "--acktr-ids",
        nargs="*",
        default=[],
        help="also compare hypergym ACKTR with hypergym A2C (same rollouts, U and network) on these ids, "
        "e.g. HyperRL-ACKTR-HalfCheetah HyperRL-ACKTR-Pong",
    )
    parser.add_argument("--acktr-steps", type=int, default=9_920, help="inner env steps per ACKTR/A2C run")
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(
        f"{'id':34s} {'agent:obs_mode':22s} {'SB3 steps/s':>12s} {'hypergym steps/s':>17s} "
        f"{'ratio':>6s} {'encoder share':>14s}"
    )
    for env_id, agent, obs_mode in itertools.product(args.ids, args.agents, args.obs_modes):
        overrides: dict[str, Any] = {"obs_mode": obs_mode}
        if obs_mode == "vae" and args.vae_hidden is not None:
            overrides["encoder_kwargs"] = {"hidden": args.vae_hidden}
        sb3_total = hyp_total = share_total = 0.0
        for r in range(args.repeats):
            sb3_total += run_sb3(env_id, args.steps, seed=r)
            fps, share = run_hypergym(env_id, args.steps, seed=r, agent=agent, **overrides)
            hyp_total += fps
            share_total += share
        sb3_fps, hyp_fps = sb3_total / args.repeats, hyp_total / args.repeats
        label = obs_mode if "encoder_kwargs" not in overrides else f"{obs_mode}/{args.vae_hidden}"
        label = f"{agent}:{label}"
        print(
            f"{env_id:34s} {label:22s} {sb3_fps:12.0f} {hyp_fps:17.0f} {hyp_fps / sb3_fps:6.3f} "
            f"{share_total / args.repeats:14.1%}",
            flush=True,
        )
    if args.acktr_ids:
        acktr_vs_a2c(args.acktr_ids, args.acktr_steps, args.repeats)


if __name__ == "__main__":
    main()
