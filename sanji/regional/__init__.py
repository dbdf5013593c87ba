"""市级 / 省级中心 The centres above the counties: a city over counties, a province over cities.

They hold every errand of their subtree to supervise it and act on none (``protocol.errand.judge``:
``regional_reads_only``), so one desk serves every level above the county (``desk.py``); a province
is a city's desk with another label. ``sanji.tiers`` finds it by name, as it finds the three tiers.
"""
