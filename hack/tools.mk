# hack/tools.mk: the real control plane that tests and `make run` use, built from the Go
# module proxy into bin/ (git-ignored). Each binary is rebuilt only when its tools
# module changes; a fresh clone builds everything from the proxy.

GO ?= go
TOOLS_DIR := $(CURDIR)/hack/tools
BIN_DIR := $(CURDIR)/bin
CRD_DIR := $(BIN_DIR)/crds/volcano

KUBE_VERSION := v1.37.2
KUBE_APISERVER_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z

tool_inputs = $(addprefix $(TOOLS_DIR)/$(1)/,go.mod go.sum) $(wildcard $(TOOLS_DIR)/$(1)/*.go)

.PHONY: controlplane crds

controlplane: bin/kube-apiserver bin/etcd crds ## Build kube-apiserver and etcd into bin/ and generate the Volcano CRDs

bin/kube-apiserver: $(call tool_inputs,kube-apiserver)
	cd $(TOOLS_DIR)/kube-apiserver && $(GO) build -trimpath -ldflags '$(KUBE_APISERVER_LDFLAGS)' -o $(BIN_DIR)/kube-apiserver .

bin/etcd: $(call tool_inputs,etcd)
	cd $(TOOLS_DIR)/etcd && $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/etcd .

crds: $(CRD_DIR)/.stamp ## Generate the Volcano CRDs into bin/crds/volcano/

# controller-gen writes one file per CRD of volcano.sh/apis scheduling/v1beta1
# (queues, podgroups); the stamp stands for the whole directory.
$(CRD_DIR)/.stamp: $(call tool_inputs,controller-gen)
	rm -rf $(CRD_DIR)
	mkdir -p $(CRD_DIR)
	cd $(TOOLS_DIR)/controller-gen && $(GO) tool controller-gen crd \
		paths=volcano.sh/apis/pkg/apis/scheduling/v1beta1 output:crd:dir=$(CRD_DIR)
	test -s $(CRD_DIR)/scheduling.volcano.sh_queues.yaml
	test -s $(CRD_DIR)/scheduling.volcano.sh_podgroups.yaml
	touch $@

bin/kubectl: $(call tool_inputs,kubectl)
	cd $(TOOLS_DIR)/kubectl && $(GO) build -trimpath -ldflags '-s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) -X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION)' -o $(BIN_DIR)/kubectl .

# bench: the helm and kustomize CLIs, for the shell loop a platform team would write
# (reconcile's BenchmarkHostScale runs it as the baseline of raas's first pass). Like kwok,
# each module pins its command in a `tool` directive: helm v3.22.0, the SDK raas renders
# with, and kustomize v5.8.2, whose kustomize/api is v0.21.2, the one raas builds with.
# helm's own Makefile stamps its version, and the Kubernetes version that `helm template`
# assumes (.Capabilities.KubeVersion) from its k8s.io/client-go (v0.37.0: 1.37).
HELM_VERSION := v3.22.0
HELM_LDFLAGS := -s -w \
	-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37

bin/helm: $(call tool_inputs,helm)
	cd $(TOOLS_DIR)/helm && $(GO) build -trimpath -ldflags '$(HELM_LDFLAGS)' -o $(BIN_DIR)/helm helm.sh/helm/v3/cmd/helm

bin/kustomize: $(call tool_inputs,kustomize)
	cd $(TOOLS_DIR)/kustomize && $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/kustomize sigs.k8s.io/kustomize/kustomize/v5

# twin: the host's controllers, scheduler and simulated nodes
.PHONY: twin-host

twin-host: bin/kube-controller-manager bin/kube-scheduler bin/kwok ## Build the twin's host side: kube-controller-manager, kube-scheduler and kwok into bin/

bin/kube-controller-manager: $(call tool_inputs,kube-controller-manager)
	cd $(TOOLS_DIR)/kube-controller-manager && $(GO) build -trimpath -ldflags '$(KUBE_APISERVER_LDFLAGS)' -o $(BIN_DIR)/kube-controller-manager .

bin/kube-scheduler: $(call tool_inputs,kube-scheduler)
	cd $(TOOLS_DIR)/kube-scheduler && $(GO) build -trimpath -ldflags '$(KUBE_APISERVER_LDFLAGS)' -o $(BIN_DIR)/kube-scheduler .

# kwok has no main package of ours: the module's tool directive pins sigs.k8s.io/kwok,
# and go build takes the command from it.
# kwok's PortForward CRD comes from its module, beside the binary: the twin's kubelet
# writes one per pod it runs, for port-forwards through the host API server.
bin/kwok: $(call tool_inputs,kwok)
	cd $(TOOLS_DIR)/kwok && $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/kwok sigs.k8s.io/kwok/cmd/kwok
	mkdir -p $(BIN_DIR)/crds/kwok
	cp "$$(cd $(TOOLS_DIR)/kwok && $(GO) list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/crd/bases/kwok.x-k8s.io_portforwards.yaml" $(BIN_DIR)/crds/kwok/
	chmod 644 $(BIN_DIR)/crds/kwok/*.yaml

# twin: the vcluster syncer and its embedded database. The syncer runs as
# `vcluster start` from the vcluster-oss image (v0.25.0); kine v0.13.14 is the version
# that image ships at /usr/local/bin/kine (vcluster's Dockerfile, KINE_VERSION), the
# store behind the chart's default embedded database. kine's SQLite driver needs cgo,
# and the dbstat table that kine's own build script (scripts/build) compiles in.
bin/vcluster: $(call tool_inputs,vcluster)
	cd $(TOOLS_DIR)/vcluster && $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/vcluster github.com/loft-sh/vcluster/cmd/vcluster

bin/kine: $(call tool_inputs,kine)
	cd $(TOOLS_DIR)/kine && CGO_ENABLED=1 CGO_CFLAGS='-DSQLITE_ENABLE_DBSTAT_VTAB=1 -DSQLITE_USE_ALLOCA=1' $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/kine github.com/k3s-io/kine

.PHONY: twin-vcluster
twin-vcluster: bin/vcluster bin/kine ## Build the vcluster syncer and kine into bin/ for the twin

# twin: the KubeRay operator, one binary per version in versions.kuberay
# (examples/raas.yaml). Each version is its own tools module (hack/tools/kuberay-vX.Y.Z),
# so that its dependencies are exactly the ones that ray-operator's go.mod pins (it has no
# replace directives to mirror). The operator's root package is `main`, so the module names
# it in a `tool` directive and go build builds it by import path.
KUBERAY_VERSIONS := v1.5.0 v1.4.0
KUBERAY_OPERATORS := $(addprefix bin/kuberay-operator-,$(KUBERAY_VERSIONS))

.PHONY: twin-kuberay
twin-kuberay: $(KUBERAY_OPERATORS) ## Build the KubeRay operator at every version in versions.kuberay into bin/

define kuberay_operator
bin/kuberay-operator-$(1): $(call tool_inputs,kuberay-$(1))
	cd $(TOOLS_DIR)/kuberay-$(1) && $(GO) build -trimpath -ldflags '-s -w' -o $(BIN_DIR)/kuberay-operator-$(1) github.com/ray-project/kuberay/ray-operator
endef
$(foreach v,$(KUBERAY_VERSIONS),$(eval $(call kuberay_operator,$(v))))

.PHONY: twin
twin: twin-host twin-vcluster twin-kuberay ## Build every part of the twin (make test and make run need it)
