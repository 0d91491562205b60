"""The workshop's user service."""
