"""村代办点 Village agent.

Register errands with the villager's mandate, carry them up, deliver results. Works offline.
Its desk: ``desk.py``.
"""

ROLE = "village"
