# Ferry: `make demo` and `make test` install what they need on a fresh Debian machine (as root).

PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# samba-ad-provision (the schema files `samba-tool domain provision` reads) is only a Recommends
# of samba-ad-dc, which --no-install-recommends skips. winbind: the lab DCs' winbindd (smbd needs
# it for SMB logons); krb5-user (kinit, klist, kvno) and smbclient (rpcclient): the lab tests reach
# the DCs' Kerberos and SMB/SAMR with them, as a user would.
# gnupg: each lab DC's key for `password hash gpg key ids` (DC agent password sync).
# python3-hivex: the device agent edits registry hives with it; python3-libregf: tests read them back.
# The real node (tools/node, make node-e2e): runc's seccomp (libseccomp-dev, pkg-config), the
# images without Docker (debootstrap, umoci), pods reaching loopback services (iptables);
# NODE_PACKAGES repeats them for the install check (listed in full above, which tools read).
NODE_PACKAGES := libseccomp-dev pkg-config debootstrap umoci iptables
DEBIAN_PACKAGES := samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind adcli krb5-user smbclient ldap-utils iproute2 postgresql gnupg python3-hivex python3-libregf libseccomp-dev pkg-config debootstrap umoci iptables
STAMP := .cache/stamps

.PHONY: demo test unit integration lint bench deps python-deps system-deps envtest crds e2e node-e2e lab-down clean

# The demo starts from a new lab each time (seeding again would give SRC new objects, which
# the last demo's joins would see as deleted, held back by the threshold), and keeps its
# state store in the lab folder, so `ferry lab down` takes it along.
demo: export FERRY_STATE := $(CURDIR)/.lab/state.sqlite
demo: deps
	ferry lab down
	ferry lab up
	ferry lab seed --users 200 --groups 20 --contacts 20
	@echo; echo "== First run: Ferry copies SRC.TEST into TGT.TEST =="
	ferry run -f examples/ad-to-ad
	@echo; echo "== Second run: nothing left to change =="
	ferry run -f examples/ad-to-ad
	@echo; ferry runs --limit 2
	@echo; echo "The lab keeps running; 'ferry lab down' removes it."

# The Kubernetes binaries build in the background while lint and the other tests run; tests
# that need the API server run last and wait for that build (tools/envtest/build.sh holds a
# lock), so a fresh machine pays for it once, overlapped.
# So do kstatus and Argo CD's Lua runtime (tools/kstatus, tools/argocd-health), which the
# GitOps health tests run, and promtool (tools/promtool), which checks the metrics and the
# chart's alerts; their fixtures wait the same way (the build scripts' locks).
test: deps
	@mkdir -p .cache/envtest .cache/tools
	@tools/envtest/build.sh > .cache/envtest/background-build.log 2>&1 & build=$$!; \
	  { tools/build-go-tool.sh kstatus && tools/build-go-tool.sh argocd-health \
	    && tools/promtool/build.sh; } \
	    > .cache/tools/background-build.log 2>&1 & tools=$$!; \
	  $(PYTHON) -m ruff check operator agent tests bench \
	  && $(PYTHON) -m mypy \
	  && $(PYTHON) -m pytest tests/unit tests/integration; status=$$?; \
	  wait $$build || { echo "envtest build failed; see .cache/envtest/background-build.log"; \
	    [ $$status -ne 0 ] || status=1; }; \
	  wait $$tools || { echo "Go tools build failed; see .cache/tools/background-build.log"; \
	    [ $$status -ne 0 ] || status=1; }; \
	  exit $$status

unit: python-deps
	$(PYTHON) -m pytest tests/unit

# On a kind cluster (needs a Docker engine; skipped without one): image, chart, a real Job pod.
e2e: python-deps
	$(PIP) install --quiet --disable-pip-version-check 'pytest-kind>=22.11,<23'
	$(PYTHON) -m pytest tests/e2e

# On a real single-node cluster built here (root; no Docker, no registry): tools/node builds
# kube-controller-manager, kube-scheduler, kubelet, containerd, runc and the CNI plugins into
# .cache/node/bin and the Ferry image from this checkout; the chart is installed by helm and
# its pods run in containerd. Not in `make test` (yet): see README "A real node".
node-e2e: deps envtest
	tools/node/build.sh
	tools/node/image.sh
	$(PYTHON) -m pytest tests/e2e_node

# The CustomResourceDefinitions, generated from the models in operator/ferry/api.
crds: python-deps
	$(PYTHON) -m ferry.api.crd crds charts/ferry/crds

lint: python-deps
	$(PYTHON) -m ruff check operator agent tests bench
	$(PYTHON) -m mypy

bench: deps envtest
	$(PYTHON) bench/run.py

deps: system-deps python-deps

# Debian's Samba AD DC, its client tools and ldap-utils; services the packages would start are
# held back: the lab runs its own Samba processes on loopback addresses only. The check reruns
# when this file changes, so a machine set up before a package was added gets it too.
system-deps: $(STAMP)/system
$(STAMP)/system: Makefile
	@if ! command -v samba >/dev/null || ! command -v ldapsearch >/dev/null \
	    || ! command -v ip >/dev/null || ! dpkg -s samba-ad-dc samba-ad-provision >/dev/null 2>&1 \
	    || ! command -v winbindd >/dev/null || ! command -v kinit >/dev/null \
	    || ! command -v rpcclient >/dev/null \
	    || ! dpkg -s $(NODE_PACKAGES) >/dev/null 2>&1 \
	    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(DEBIAN_PACKAGES); status=$$?; \
	  rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi
	@mkdir -p $(STAMP) && touch $@

python-deps: $(STAMP)/python
$(STAMP)/python: pyproject.toml
	$(PIP) install --quiet --disable-pip-version-check -e '.[operator,test]'
	@mkdir -p $(STAMP) && touch $@

# etcd, kube-apiserver and helm for the Kubernetes integration tests, built from the Go modules
# pinned in tools/envtest (needs Go >= 1.24 and a module proxy) into .cache/envtest/bin.
# With KUBEBUILDER_ASSETS holding etcd and kube-apiserver, only helm is built.
envtest: $(STAMP)/envtest
$(STAMP)/envtest: tools/envtest/build.sh tools/envtest/go.mod tools/envtest/go.sum
	tools/envtest/build.sh
	@mkdir -p $(STAMP) && touch $@

lab-down:
	-ferry lab down

clean: lab-down
	chmod -R u+w .cache 2>/dev/null || true  # Go's module cache is read-only
	rm -rf .cache .ferry .pytest_cache .mypy_cache .ruff_cache
