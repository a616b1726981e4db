FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SECONDOPINION_HOST=0.0.0.0 \
    SECONDOPINION_PORT=8080 \
    SECONDOPINION_DATA_DIR=/data

RUN useradd --create-home --uid 10001 app && mkdir /data && chown app /data
WORKDIR /app

COPY pyproject.toml README.md ./
COPY secondopinion ./secondopinion
RUN pip install --no-cache-dir .

COPY main.py alembic.ini ./
COPY migrations ./migrations
COPY assets ./assets

USER app
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
CMD ["python", "main.py"]
