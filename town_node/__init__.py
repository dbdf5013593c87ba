"""乡镇便民服务中心 Township centre.

One-window intake, handling by windows, escalation to the county, results down to villages.
Its desk: ``desk.py``.
"""

ROLE = "town"
