"""The workshop's reference service: a FastAPI user service on PostgreSQL and Redis."""
