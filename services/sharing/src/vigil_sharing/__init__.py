"""vigil_sharing: clearances, access requests, grants and partner subscriptions."""
