# syntax=docker/dockerfile:1
# Stage 1: build the wheel (Cython extensions compiled here) and every dependency wheel.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sentrycore ./sentrycore
COPY sentrycoin ./sentrycoin
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[ha]"

# Stage 2: slim runtime, no compiler, non-root.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin sentry \
 && mkdir -p /data && chown sentry:sentry /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "sentrycoin[ha]" && rm -rf /wheels
USER sentry
WORKDIR /home/sentry
ENV PORT=8080 \
    HOST=0.0.0.0 \
    SENTRY_DB=/data/alerts.db \
    LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# /health is 200 while at least one book is valid and fresh.
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)" || exit 1
# SIGTERM: stop feeds, flush the alert outbox, exit 0 within 10 s.
STOPSIGNAL SIGTERM
CMD ["sentrycoin", "run"]
