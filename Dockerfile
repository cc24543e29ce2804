# The team server: deploy-mcp over streamable HTTP (`deploy-mcp serve --http`), for several people and agents.
# Build from the repository root: docker build -t deploy-mcp .   Usage: docs/guides/container.md.
#
# The wheel is built from this source tree, so the image runs exactly the code of the commit it was built from.
# It holds every extra ([all]: the Kubernetes and ECS drivers, squawk for migrations, the PostgreSQL ledger driver);
# build with --build-arg EXTRAS=kubernetes,postgresql (say) for a smaller image.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY deploy_mcp ./deploy_mcp
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim-bookworm
ARG EXTRAS=all
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEPLOY_MCP_CONFIG=/project/deploy.toml
COPY --from=build /dist /tmp/dist
# DL3013 asks to pin what pip installs: the wheel is this commit's own build, and its dependencies are bounded by
# pyproject.toml like any `pip install deploy-mcp`.
# hadolint ignore=DL3013
RUN set -- /tmp/dist/*.whl \
    && pip install --no-cache-dir "$1[${EXTRAS}]" \
    && rm -rf /tmp/dist \
    && groupadd --gid 10001 deploy \
    && useradd --uid 10001 --gid 10001 --home-dir /home/deploy --create-home --shell /usr/sbin/nologin deploy \
    && mkdir -p /project/.deploy \
    && chown -R deploy:deploy /project

# The project: mount its deploy.toml at /project/deploy.toml (read-only is fine). The server keeps its state in
# /project/.deploy: the SQLite ledger when deploy.toml names no PostgreSQL ledger, so keep it on a volume.
WORKDIR /project
VOLUME ["/project/.deploy"]
USER 10001:10001
EXPOSE 8765

# /health answers without the token, with {"status": "ok", "version": ...}, and is never subject to Host checks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/health', timeout=4)"]

# Listens on every address of the container. A token is required: DEPLOY_MCP_TOKEN, or a token file named by
# DEPLOY_MCP_TOKEN_FILE (or --token-file). Clients' Host header must be allowed: replace the default CMD with the
# names clients use, e.g. `docker run ... deploy-mcp --allowed-host deploy.example.com`.
ENTRYPOINT ["deploy-mcp", "serve", "--http", "--host", "0.0.0.0", "--port", "8765"]
CMD ["--allowed-host", "localhost"]
