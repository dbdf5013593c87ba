"""Size limits every node enforces before doing any work on received bytes."""

MAX_FRAME_BYTES = 1 * 1024 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024  # after decompression: a zip bomb stops here
MAX_ACTIONS_PER_BATCH = 2000
MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_TEXT = 4000  # any free-text field of an action
DEFAULT_BATCH_ACTIONS = 200
TARGET_FRAME_BYTES = 48 * 1024  # sealing splits batches above this; one frame fits any 64 KB budget
