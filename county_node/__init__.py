"""县级政务服务中心 County hub.

Department inboxes for escalated errands, supervision of every level.
"""

ROLE = "county"
