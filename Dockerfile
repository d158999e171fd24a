# Builds the three Portico binaries into one small image (used by helm/portico).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway -p portico-lb-controller -p portico-proxy-agent

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates nftables && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gateway /src/target/release/lb-controller /src/target/release/proxy-agent /usr/local/bin/
USER 65532
ENTRYPOINT ["/usr/local/bin/gateway"]
