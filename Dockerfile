# syntax=docker/dockerfile:1
# The Projector image: a static binary on an empty base, running as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t projector .
#   docker run --rm projector version

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/projector-dev/projector/internal/version.Version=${VERSION}" -o /out/projector ./cmd/projector

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="projector" \
      org.opencontainers.image.description="Keeps PostgreSQL read models up to date from KurrentDB" \
      org.opencontainers.image.source="https://github.com/projector-dev/projector" \
      org.opencontainers.image.version="${VERSION}"
# CA certificates, for KurrentDB and PostgreSQL over TLS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/projector /projector
USER 65532:65532
EXPOSE 9090
ENV PROJECTOR_HTTP_ADDR=:9090
ENTRYPOINT ["/projector"]
CMD ["run"]
