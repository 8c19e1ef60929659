# One image, one `hookrelay` binary; the command picks the role.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p hookrelay-cli && cp target/release/hookrelay /hookrelay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 hookrelay
COPY --from=build /hookrelay /usr/local/bin/hookrelay
USER hookrelay
ENV HOOKRELAY_LOG_FORMAT=json
ENTRYPOINT ["hookrelay"]
CMD ["serve"]
