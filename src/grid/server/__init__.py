"""Team mode's API server (FastAPI on uvicorn): the only package that speaks FastAPI."""
