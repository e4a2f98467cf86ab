# For people with a Docker engine. Without one, `make image` builds the same
# kind of image (static binary, non-root 65532, CA bundle, nothing else) as an
# OCI tarball.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Must be semver (vX.Y.Z...): component-base refuses anything else at start-up.
ARG VERSION=v0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${VERSION}" \
    -o /out/sakura-cloud-controller-manager ./cmd/sakura-cloud-controller-manager

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sakura-cloud-controller-manager /sakura-cloud-controller-manager
USER 65532:65532
ENTRYPOINT ["/sakura-cloud-controller-manager"]
