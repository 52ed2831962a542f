"""HTTP API v1 (FastAPI). Routers are thin: commands go to the application, queries to read models."""
