"""县级政务服务中心 County hub.

Department inboxes for escalated errands and 联办 sub-tasks, supervision of every level, the
assessment office, the rules and catalogue it publishes. Its desk: ``desk.py``.
"""

ROLE = "county"
