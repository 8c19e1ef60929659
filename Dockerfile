# One image, one `hookrelay` binary; the command picks the role:
#   hookrelay migrate | hookrelay serve --roles api|router|sender | hookrelay receiver
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The Cargo profile: `release` carries no debug info; `--build-arg
# PROFILE=release-debug` keeps line tables (Cargo.toml, docs/operations.md).
ARG PROFILE=release

# Dependency layer: manifests and stub sources only, so a code change does not
# rebuild every dependency.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY crates/model/Cargo.toml crates/model/
COPY crates/amqp/Cargo.toml crates/amqp/
COPY crates/store/Cargo.toml crates/store/build.rs crates/store/
COPY crates/metrics/Cargo.toml crates/metrics/
COPY crates/producer/Cargo.toml crates/producer/
COPY crates/router/Cargo.toml crates/router/
COPY crates/sender/Cargo.toml crates/sender/
COPY crates/admin/Cargo.toml crates/admin/
COPY crates/console/Cargo.toml crates/console/
COPY crates/portal/Cargo.toml crates/portal/
COPY crates/server/Cargo.toml crates/server/
COPY crates/cli/Cargo.toml crates/cli/
COPY tests/Cargo.toml tests/
COPY xtask/Cargo.toml xtask/
RUN for c in model amqp store metrics producer router sender admin console portal server cli; do mkdir -p crates/$c/src && touch crates/$c/src/lib.rs; done \
    && echo 'fn main() {}' > crates/cli/src/main.rs \
    && mkdir -p crates/store/migrations tests/src tests/e2e tests/benches xtask/src \
    && touch tests/src/lib.rs && echo 'fn main() {}' > xtask/src/main.rs \
    && echo 'fn main() {}' > tests/e2e/main.rs && echo 'fn main() {}' > tests/benches/pipeline.rs \
    && cargo build --profile "$PROFILE" --locked -p hookrelay-cli

# The real sources; touch so cargo rebuilds the workspace crates, not the deps.
COPY crates crates
RUN touch crates/*/src/*.rs crates/store/build.rs \
    && cargo build --profile "$PROFILE" --locked -p hookrelay-cli \
    && cp "target/$PROFILE/hookrelay" /hookrelay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home hookrelay
COPY --from=build /hookrelay /usr/local/bin/hookrelay
USER 10001
ENV HOOKRELAY_LOG_FORMAT=json \
    HOOKRELAY_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s CMD ["hookrelay", "probe", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["hookrelay"]
CMD ["serve"]
