"""Sanji: what the county hub, township nodes and village agents share.

Storage, the sync driver, the HTTP client and server plumbing, and the command
line live here once; ``county_node``, ``town_node`` and ``village_agent`` each
add only what their desk needs.
"""

__version__ = "0.4.0"  # keep equal to pyproject.toml; sanji.version adds git describe
