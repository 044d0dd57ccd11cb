# syntax=docker/dockerfile:1
# HostPortal image: one image for web, worker, beat and the one-shot migrate (compose.yaml).
# Runtime dependencies only (requirements.txt); runs as an unprivileged user.

# --- build: a virtualenv with the pinned runtime requirements --------------------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# --- runtime --------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
# WeasyPrint (invoice, act and contract PDFs) needs Pango/HarfBuzz and a font; nothing else from Debian.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 portal \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/portal --no-create-home portal \
    && mkdir -p /var/lib/portal/media /run/portal/prometheus \
    && chown -R 10001:10001 /var/lib/portal /run/portal

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=portal.settings.production \
    PORTAL_BIND=0.0.0.0:8000 \
    MEDIA_ROOT=/var/lib/portal/media \
    CELERY_BEAT_SCHEDULE_FILE=/var/lib/portal/celerybeat-schedule \
    PROMETHEUS_MULTIPROC_DIR=/run/portal/prometheus \
    LOG_FORMAT=json

WORKDIR /srv/portal
COPY . /srv/portal
# Translations and static files are built into the image (code and assets owned by root, read-only
# for the app). The settings need a DATABASE_URL to load; nothing connects to it here.
RUN python scripts/compilemessages.py \
    && DATABASE_URL=postgres://build@127.0.0.1/build \
       SECRET_KEY=build-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz \
       python manage.py collectstatic --noinput --verbosity 0

USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/srv/portal/deploy/docker-entrypoint"]
CMD ["web"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/srv/portal/deploy/healthcheck"]
