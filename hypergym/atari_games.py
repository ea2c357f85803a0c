"""The Atari games of the catalogue (a light module: presets import it without loading torch or ale-py)."""

from __future__ import annotations

__all__ = ["ATARI_GAMES"]

#: Task name -> ale-py ROM id: the games of the EPGT paper's Atari experiments and of ACKTR's benchmark.
ATARI_GAMES: dict[str, str] = {
    "Pong": "pong",
    "Breakout": "breakout",
    "BeamRider": "beam_rider",
    "Qbert": "qbert",
    "SpaceInvaders": "space_invaders",
    "Seaquest": "seaquest",
    "Alien": "alien",
    "DemonAttack": "demon_attack",
    "MsPacman": "ms_pacman",
}
