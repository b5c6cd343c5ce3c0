"""The one-command demo: its own redis-server and mosquitto, catalog, camera video, all parts."""
