# jabberfly in a container: the compiled runtime on Debian's node 20 image.
# (Written and checked without a Docker engine: see README "Running it for real".)
#   docker build -t jabberfly .
#   docker run -d --name jabberfly -v jabberfly-data:/data \
#     -p 5222:5222 -p 5223:5223 -p 5269:5269 -p 5280:5280 -p 5281:5281 jabberfly
#   docker exec -it jabberfly jabberfly adduser alice@localhost
# Your own configuration: mount it over /etc/jabberfly/jabberfly.yaml.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
# openssl writes the first self-signed certificate.
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/jabberfly
COPY --from=build /src/package.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/node_modules ./node_modules
COPY contrib/docker-jabberfly.yaml /etc/jabberfly/jabberfly.yaml
RUN ln -s /opt/jabberfly/bin/jabberfly.js /usr/local/bin/jabberfly \
    && mkdir /data && chown node:node /data
ENV JABBERFLY_CONFIG=/etc/jabberfly/jabberfly.yaml NODE_ENV=production
USER node
VOLUME /data
EXPOSE 5222 5223 5269 5280 5281
CMD ["jabberfly", "start"]
