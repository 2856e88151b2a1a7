FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WIROBOT_DATABASE__PATH=/data/wirobot.db

RUN useradd --create-home --uid 10001 wirobot \
    && mkdir /data && chown wirobot:wirobot /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

USER wirobot
VOLUME ["/data"]
ENTRYPOINT ["python", "-m", "bot"]
