FROM python:3.11-slim

# The app user cannot write to /app, so runtime files and uploads live under /data.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATAMATE_VAR_DIR=/data/var \
    DATAMATE_STORAGE_ROOT=/data/media

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

RUN useradd --create-home --uid 1000 datamate \
    && mkdir -p /data/var /data/media \
    && chown -R datamate /data
USER datamate

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "datamate.asgi:application"]
