# syntax=docker/dockerfile:1
# Multi-stage: build with dev dependencies, ship production dependencies only.
# bookworm-slim is glibc, so better-sqlite3 compiles cleanly.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
# `npm ci` runs `prepare` (the TypeScript build into dist/) and compiles better-sqlite3; then
# the dev dependencies are dropped so the final stage copies production node_modules only.
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
# The example config binds 127.0.0.1; a container must listen on all interfaces to be reached.
# rebill then refuses to start (exit 78) unless REBILL_ADMIN_TOKEN is given a secret at run time
# (docker run -e REBILL_ADMIN_TOKEN=...): the config's fallback token is public knowledge.
ENV NODE_ENV=production \
    REBILL_CONFIG=/etc/rebill/rebill.yaml \
    REBILL_DATABASE_URL=sqlite:/data/rebill.db \
    REBILL_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The compose stack's webhook receiver runs from this image too.
COPY deploy/webhook-receiver.mjs ./deploy/
COPY config/rebill.yaml /etc/rebill/rebill.yaml
# A directory volume: SQLite in WAL mode writes -wal and -shm files next to the database.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 8080
# Slim images have no curl: ask node's fetch. Strict: healthy only when /healthz answers 200
# {"status":"pass"} within 4 s (under docker's own 5 s timeout); refused, timed out, another
# status or another body all exit 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.REBILL_HTTP_PORT||8080)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>r.json().then(b=>process.exit(r.status===200&&b&&b.status==='pass'?0:1))).catch(()=>process.exit(1))"]
# Exec form under tini: SIGTERM reaches node directly (npm start would swallow it).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/rebill.js", "run"]
