"""The web server in the bot's process: health, Prometheus metrics and the gallery."""
