# insta-service: applies migrations, then serves on port 8000 as a non-root user.
# Only the run-time requirements and the code the service runs are in the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 app
COPY --chown=app:app alembic.ini ./
COPY --chown=app:app alembic ./alembic
COPY --chown=app:app app ./app
# The embedded SQLite file (used only when no database is configured) needs a writable place.
RUN mkdir /app/data && chown app:app /app/data
ENV SQLITE_PATH=/app/data/insta_service.db

USER app
EXPOSE 8000

# /ready: the database answers and its schema is at the newest migration (200), else 503.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"

# Inside the container the service listens on every interface of the container's own network;
# what reaches it from outside is what compose (or the operator) publishes.
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn app.main:app --host 0.0.0.0 --port 8000 --no-access-log"]
