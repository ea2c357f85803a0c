"""hypergym hyper-agents (EPGT episodic control, DQN, random, static)."""

__all__: list[str] = []
