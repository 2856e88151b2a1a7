FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WIROBOT_DATABASE__PATH=/data/wirobot.db \
    WIROBOT_WEB__HOST=0.0.0.0 \
    WIROBOT_WEB__PORT=8080

# A user of its own; /data (the database and images, a volume) and /work (the working folder,
# where `wirobot imagine` writes ./out) belong to it.
RUN useradd --create-home --uid 10001 wirobot \
    && mkdir -p /data /work \
    && chown wirobot:wirobot /data /work

WORKDIR /app

# The dependencies in a layer of their own: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code changes most often: last.
COPY README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-deps . && rm -rf build *.egg-info

USER wirobot
WORKDIR /work
VOLUME ["/data"]
EXPOSE 8080
# 200 from /healthz: connected to Discord, the database answers, the event loop runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WIROBOT_WEB__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["python", "-m", "bot"]
