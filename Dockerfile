# syntax=docker/dockerfile:1
# The image runs exactly what the npm package ships (package.json "files"): the build stage compiles
# and packs the package, the final stage unpacks that tarball and installs production dependencies
# only, as a non-root user. test/e2e/image.test.ts builds this runtime tree from this file and
# .dockerignore and starts it with docker-compose.yml's environment, so keep every RUN relative to
# WORKDIR and every stage on WORKDIR /app (the test maps it to a temp directory).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) runs below, once the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
# The sources and the shipped files (.dockerignore lets only those into the context).
COPY . .
RUN npm run build && npm pack --ignore-scripts --no-audit --no-fund && tar -xzf sse-mcp-server-*.tgz

FROM node:20-bookworm-slim
# HOST=0.0.0.0 needs a Host allow-list (or auth), else the server refuses to start. The image allows
# the loopback names (`docker run -p 8080:8080`); docker-compose.yml adds the service and public names.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 ALLOWED_HOSTS=localhost,127.0.0.1,[::1]
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (zod and @sinclair/typebox included: tool modules import them).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# The package as npm ships it: dist/, docs/page/, examples/, .env.example, package.json, README.
COPY --from=build /app/package/ ./
# Tool modules (MCP_TOOLS): docker-compose mounts ./tools here; they may import 'sse-mcp-server'.
RUN mkdir -p tools
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/server.js"]
