"""The dashboard: devices, their live matches and the catalog, served by FastAPI + Jinja2.

Live data comes from Redis (written by the cloud worker) and reaches the browser by
server push (SSE); the catalog pages use the same catalog code as the CLI.
"""
