FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WIROBOT_DATABASE__PATH=/data/wirobot.db \
    WIROBOT_WEB__HOST=0.0.0.0 \
    WIROBOT_WEB__PORT=8080

RUN useradd --create-home --uid 10001 wirobot \
    && mkdir /data && chown wirobot:wirobot /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

USER wirobot
VOLUME ["/data"]
EXPOSE 8080
# 200 from /healthz: connected to Discord, the database answers, the event loop runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WIROBOT_WEB__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["python", "-m", "bot"]
