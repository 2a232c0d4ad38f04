# Gramophone: the Telegram bot and its render workers in one image.
#   docker build -t gramophone .
#   docker run -d --init -e TELEGRAM_BOT_TOKEN=... -v gramophone-data:/data gramophone   # bot + embedded workers
#   docker run -d --init -e GRAMOPHONE_REDIS_URL=redis://... gramophone gramophone worker # extra workers
# ffmpeg comes from the imageio-ffmpeg wheel and eSpeak NG from espeakng-loader, so no apt packages.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRAMOPHONE_DATA_DIR=/data \
    GRAMOPHONE_BUILTIN_CHARACTERS_DIR=/app/characters

WORKDIR /app

# Dependencies first (a layer that survives code changes), then the code.
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY bot ./bot
RUN pip install . && gramophone --help > /dev/null

# Built-in characters. Libraries are built into these folders on first use, so the folder is
# writable by the bot's user; compose mounts a volume here, shared with the workers.
COPY characters ./characters

# /data/characters: characters made from a picture (a volume of its own in compose, shared
# with the render workers); made here so a fresh volume belongs to the bot's user.
RUN useradd --create-home --uid 10001 --user-group gramophone \
    && mkdir -p /data/characters \
    && chown -R gramophone:gramophone /data /app/characters
USER gramophone

VOLUME ["/data"]
# Webhook mode listens here (GRAMOPHONE_PORT); polling needs no port.
EXPOSE 8443

CMD ["gramophone", "bot"]
