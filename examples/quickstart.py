"""Quick start: one learning episode (one PPO update phase) of HyperRL-PPO-HalfCheetah.

Every step is one minibatch update of a real PPO learner on MuJoCo HalfCheetah-v5; the action picks
(batch size, GAE lambda, clip range, learning rate) from the paper's grid; the reward is 0 until the
last step of the phase, which gets G, the inner agent's return.
"""

import gymnasium as gym

import hypergym  # noqa: F401 - registers the HyperRL-* ids

env = gym.make("HyperRL-PPO-HalfCheetah")  # real PPO on MuJoCo HalfCheetah-v5, paper preset
obs, info = env.reset(seed=0)
steps = 0
while True:
    obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    steps += 1
    if terminated or truncated:
        break  # one learning episode = one update phase
print(f"update steps in the phase: {steps}")
print(f"G = {info['G']:.2f}")
print(f"hyperparameters in force: {info['hyperparams']}")
print(f"inner env steps so far: {info['env_steps']}")
