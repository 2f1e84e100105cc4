# binance-smart: one image for the bot, the engine and the simulator.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CJK fonts so zh_CN chart labels render instead of falling back to English.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not reinstall the 3 GB stack.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p bot trader reports \
 && touch bot/__init__.py trader/__init__.py reports/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y binance-smart
COPY bot ./bot
COPY trader ./trader
COPY reports ./reports
COPY config ./config
COPY locales ./locales
RUN pip install --no-deps -c constraints.txt . \
 && useradd --create-home --uid 1000 bsmart \
 && mkdir -p /app/user_data && chown bsmart:bsmart /app/user_data

USER bsmart
VOLUME ["/app/user_data"]
# Prometheus metrics; set metrics.host to 0.0.0.0 in the config to expose it outside the container.
EXPOSE 9108
ENTRYPOINT ["bsmart"]
CMD ["run"]
