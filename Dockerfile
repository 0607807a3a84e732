# syntax=docker/dockerfile:1
# The raas image: bin/raas, and the catalog that `make catalog` fills (the vcluster chart,
# the KubeRay bases, the Volcano CRDs) so that renders need no network. deploy/ runs it.
#
#   docker build -t ghcr.io/raas-dev/raas:dev .
#
# It has not been built in the environment raas is developed in, which has no container
# runtime; deploy/deploy_test.go checks the manifests, and that raas reconcile accepts the
# Deployment's flags, instead.

FROM golang:1.26.8 AS build
WORKDIR /src
# A static binary for distroless/static.
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first, so that a source change reuses the download. hack/tools/controller-gen is
# a module of its own: the catalog script resolves the vcluster and KubeRay modules and
# generates the Volcano CRDs through it.
COPY go.mod go.sum ./
COPY hack/tools/controller-gen/go.mod hack/tools/controller-gen/go.sum hack/tools/controller-gen/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download && (cd hack/tools/controller-gen && go mod download)
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    make build catalog

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/raas /usr/local/bin/raas
COPY --from=build /src/.catalog /catalog
ENV RAAS_CATALOG=/catalog
# distroless's nonroot user; numeric, so that the kubelet can check runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/raas"]
