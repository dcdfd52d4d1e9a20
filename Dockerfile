# ws-service container image. Build: `docker build -t ws-service .` (docker-compose.yml does it).
# Two stages: the build stage compiles TypeScript with the dev dependencies; the runtime stage
# holds production dependencies and the compiled dist/src only, and runs as a non-root user.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:24-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The image's unprivileged user; the service needs no write access anywhere.
USER node
EXPOSE 8080
# main.js drains on SIGTERM (see docs/operations.md, the shutdown sequence); give it the grace period the
# orchestrator allows: above SHUTDOWN_DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
# Liveness through node itself: the slim image has neither curl nor wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# Not `npm start`: it compiles with tsc, a dev dependency absent here.
CMD ["node", "dist/src/main.js"]
