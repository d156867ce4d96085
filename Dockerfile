# gembot: slim, non-root, dependencies in their own layer, the SQLite file on the /data volume.
#   docker build -t gembot .
#   docker run -e GEMINI_API_KEY=... -e TELEGRAM_BOT_TOKEN=... -v gembot-data:/data -p 8080:8080 gembot
# Configuration comes from environment variables (deploy/config.docker.yaml lists them); mount another file
# and set GEMBOT_CONFIG to use your own. tests/integration/ops/test_dockerfile.py runs these steps in a
# fresh virtual environment and lints this file with hadolint, as no Docker engine runs in CI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/gembot \
    PATH=/opt/gembot/bin:$PATH \
    GEMBOT_CONFIG=/app/config.docker.yaml

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the dependencies change.
COPY pyproject.toml ./
RUN python -m venv "$VIRTUAL_ENV" \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code, installed without touching the dependencies.
COPY README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info
COPY deploy/config.docker.yaml /app/config.docker.yaml

# A fixed non-root user owning only the data directory.
RUN groupadd --system --gid 10001 gembot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin gembot \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080

# Liveness in Python: slim images have no curl. GEMBOT_PORT is the port config.docker.yaml listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GEMBOT_PORT', '8080'), timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
CMD ["gembot", "run"]
