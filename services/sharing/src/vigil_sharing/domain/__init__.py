"""The sharing domain: pure rules for access requests, grants and the access decision (ACC-1..ACC-8)."""
