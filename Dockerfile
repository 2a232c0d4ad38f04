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

# 1. The dependencies alone, from pyproject.toml: this layer survives every code change. (A
#    stand-in package of the same name is installed and removed again, keeping its dependencies.)
COPY pyproject.toml ./
RUN python - <<'PY'
import subprocess, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]["face"]
subprocess.run([sys.executable, "-m", "pip", "install", *project["dependencies"], *extras], check=True)
PY
RUN pip install --no-deps mediapipe==0.10.21   # face landmarks (its metadata would pull a second OpenCV)

# 2. The code, without its dependencies (they are all there).
COPY README.md ./
COPY characters ./characters
COPY engine ./engine
COPY bot ./bot
RUN pip install --no-deps . && gramophone --version

# 3. The fox's library, built now so the first /start answers at once (about 30 s here). The
#    characters folder is writable by the bot's user: compose mounts a volume over it, which
#    Docker fills from the image on first use.
RUN gramophone characters build fox

# /data/characters: characters made from a picture (a volume of its own in compose, shared
# with the render workers); made here so a fresh volume belongs to the bot's user.
RUN useradd --create-home --uid 10001 --user-group gramophone \
    && mkdir -p /data/characters \
    && chown -R gramophone:gramophone /data /app/characters
USER gramophone

VOLUME ["/data"]
# Webhook mode listens here (GRAMOPHONE_PORT); polling needs no port.
EXPOSE 8443

# Healthy while the bot's dispatcher passes work on (it touches /data/bot.alive every 5 s).
# Workers have no such file: their services override the check (deploy/compose.yaml).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["gramophone", "health"]

CMD ["gramophone", "bot"]
