"""Sync: the parent's side (``SyncServer``), the child's loop (``SyncDriver``), and transports."""
