"""Repository tooling: what nox uses to find or start PostgreSQL and Redis."""
