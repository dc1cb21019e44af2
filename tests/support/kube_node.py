"""A real single-node Kubernetes cluster for end-to-end tests: pods run in containerd and runc.

KubeNode starts, beside tests.support.kube_api's etcd and kube-apiserver (on a loopback
address), kube-controller-manager, kube-scheduler, containerd and a kubelet (all on that
address), with the CNI bridge plugin on a bridge of its own. Pods reach the API server only
through what is set up here: a DNAT on the bridge from the `kubernetes` Service address
(10.0.0.1:443, what in-cluster config uses) to the loopback server, with route_localnet on the
bridge so the kernel routes to 127/8 from it; `expose()` adds the same for another loopback
service (the Samba lab). Binaries: tools/node/build.sh (.cache/node/bin); images:
tools/node/image.sh (.cache/node/images). Needs root, cgroups and iptables.

What this changes on the machine and `close()` restores, even after a failed start: the
processes (and containerd's shims), mounts under the node's folder, the bridge and the pods'
veths, the iptables rules, kubelet's kubepods cgroups, and the sysctls kubelet sets
(vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) and the bridge plugin sets
(net.ipv4.ip_forward).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tests.support.kube_api import (
    SERVICE_IP,
    Binaries,
    KubeAPI,
    KubeAPIError,
    _free_ports,
    _stop_group,
    _tail,
)

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / ".cache" / "node" / "bin"
NODE_IMAGES = REPO / ".cache" / "node" / "images"
BUILD_SCRIPT = REPO / "tools" / "node" / "build.sh"
IMAGE_SCRIPT = REPO / "tools" / "node" / "image.sh"
BRIDGE = "ferrynode0"
POD_CIDR = "10.244.0.0/24"
# kubelet refuses a loopback --node-ip, so the Node has no InternalIP: the API server reaches
# it by Hostname, and "localhost" is the one name that resolves to loopback everywhere.
NODE_NAME = "localhost"
KUBELET_ADDRESS = "127.0.0.1"
PAUSE_IMAGE = "registry.local/pause:3.10"
# What kubelet and the CNI bridge plugin change; restored by close().
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "net.ipv4.ip_forward")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class KubeNodeError(KubeAPIError):
    """The node could not be built, started or torn down; the message says which part."""


@dataclass(frozen=True)
class HostState:
    """What a node changes on the machine, read before and after (the teardown's proof)."""

    sysctls: dict[str, str]
    links: frozenset[str]
    nat_rules: tuple[str, ...]
    kubepods_cgroups: frozenset[str]

    @classmethod
    def read(cls) -> HostState:
        return cls(
            sysctls={name: _sysctl(name) for name in SYSCTLS},
            links=frozenset(_links()),
            nat_rules=tuple(_nat_rules()),
            kubepods_cgroups=frozenset(str(p) for p in CGROUP_ROOT.glob("*/kubepods*")),
        )


def build(timeout: float = 3600.0) -> None:
    """tools/node/build.sh then tools/node/image.sh (each returns at once when up to date)."""
    scripts = [BUILD_SCRIPT, IMAGE_SCRIPT]
    # The image follows the checkout's sources (minutes to rebuild): FERRY_NODE_KEEP_IMAGE=1
    # runs the one already built while editing.
    if os.environ.get("FERRY_NODE_KEEP_IMAGE") == "1" and (NODE_IMAGES / "ferry.tag").exists():
        scripts.remove(IMAGE_SCRIPT)
    for script in scripts:
        log_path = NODE_BIN.parent / f"{script.stem}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(script)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout)
            finally:
                if process.poll() is None:
                    _stop_group(process, 10.0)
        if code != 0:
            raise KubeNodeError(
                f"{script.relative_to(REPO)} failed (exit {code}); last lines of {log_path}:\n"
                + _tail(log_path, 30)
            )


def ferry_image() -> str:
    """The ferry image's reference, as tools/node/image.sh tagged it (by content hash)."""
    return (NODE_IMAGES / "ferry.tag").read_text(encoding="utf-8").strip()


class NodeAPI(KubeAPI):
    """The session's API server, able to reach the kubelet (logs, exec) as the admin."""

    def _apiserver_command(self) -> list[str]:
        admin = self.admin
        assert admin.cert_file is not None and admin.key_file is not None
        return [
            *super()._apiserver_command(),
            f"--kubelet-client-certificate={admin.cert_file}",
            f"--kubelet-client-key={admin.key_file}",
            "--kubelet-preferred-address-types=Hostname",
        ]


@dataclass
class KubeNode:
    """etcd, kube-apiserver and a node with one root folder; `with` starts and tears down."""

    root: Path
    binaries: Binaries
    start_timeout: float = 300.0  # busy 2-core machine: kubelet's first sync is slow there
    api: NodeAPI = field(init=False)
    before: HostState | None = field(init=False, default=None)
    _processes: list[tuple[str, subprocess.Popen[bytes]]] = field(init=False, default_factory=list)
    _nat: list[list[str]] = field(init=False, default_factory=list)
    _created_dirs: list[Path] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.api = NodeAPI(self.root / "api", self.binaries)
        self.bin = NODE_BIN

    def __enter__(self) -> KubeNode:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    @property
    def address(self) -> str:
        return self.api.address

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KubeNode:
        """Bring everything up and wait for the Node to be Ready and the images to be there."""
        if os.geteuid() != 0:
            raise KubeNodeError("a real node needs root (cgroups, mounts, iptables, sysctls)")
        self.before = HostState.read()
        for path in (Path("/run/containerd"), Path("/var/lib/cni"), Path("/var/run/netns")):
            if not path.exists():
                self._created_dirs.append(path)
        self.api.start()
        self._network()
        self._write_configs()
        sock = self.root / "run" / "containerd.sock"
        self._spawn(
            "containerd",
            [str(self.bin / "containerd"), "--config", str(self._etc("containerd.toml"))],
        )
        self._wait(lambda: sock.is_socket(), "containerd's socket")
        for image in (NODE_IMAGES / "pause.oci.tar", NODE_IMAGES / "ferry.oci.tar"):
            base = (
                PAUSE_IMAGE.split(":")[0] if "pause" in image.name else ferry_image().split(":")[0]
            )
            self.ctr("images", "import", "--base-name", base, str(image))
        kubeconfig = str(self.kubeconfig)
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={self.address}",
            "--secure-port=0",
            "--leader-elect=false",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                *common,
                f"--service-account-private-key-file={self.api.pki / 'sa.key'}",
                f"--root-ca-file={self.api.ca_file}",
                "--use-service-account-credentials=true",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle",
            ],
        )
        self._spawn("kube-scheduler", [str(self.bin / "kube-scheduler"), *common])
        self._spawn(
            "kubelet",
            [
                str(self.bin / "kubelet"),
                f"--config={self._etc('kubelet.yaml')}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.root / 'kubelet'}",
                f"--cert-dir={self.root / 'kubelet' / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--pod-infra-container-image={PAUSE_IMAGE}",
            ],
        )
        self._wait(self._node_ready, f"node {NODE_NAME} Ready")
        self._wait(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            "the default ServiceAccount",
        )
        return self

    def close(self) -> None:
        """Stop everything started and undo every change to the machine, whatever failed."""
        errors: list[str] = []
        if any(name == "kubelet" for name, _ in self._processes):
            # Pods first, while kubelet runs: it stops their sandboxes (CNI DEL, unmounts).
            self.kubectl(
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=true",
                "--timeout=60s",
                check=False,
            )
            with contextlib.suppress(KubeNodeError):
                self._wait(self._no_sandboxes, "kubelet to stop the pod sandboxes", timeout=60)
        for _name, process in reversed(self._processes):
            _stop_group(process, 15.0)
        self._processes.clear()
        self._stop_shims()
        self.api.close()
        for _ in range(3):
            for mount in sorted(self._mounts(), reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        for rule in reversed(self._nat):
            subprocess.run(["iptables", "-t", "nat", "-D", *rule], capture_output=True, check=False)
        self._nat.clear()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        for cgroup in sorted(CGROUP_ROOT.glob("*/kubepods*")):
            if self.before is None or str(cgroup) not in self.before.kubepods_cgroups:
                for folder in sorted(cgroup.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        if self.before is not None:
            for name, value in self.before.sysctls.items():
                if _sysctl(name) != value:
                    subprocess.run(["sysctl", "-qw", f"{name}={value}"], check=False)
        for path in reversed(self._created_dirs):
            # Only what the node left empty: containerd's shims and go-cni write here whatever
            # root and state say.
            for folder in sorted(path.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if self.before is not None:
            after = HostState.read()
            if after != self.before:
                errors.append(f"machine not as before: {describe_difference(self.before, after)}")
        if errors:
            raise KubeNodeError("; ".join(errors))

    # -- tools -------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubeNodeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def helm(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        assert self.binaries.helm is not None, "helm was not built (tools/envtest/build.sh)"
        result = subprocess.run(
            [str(self.binaries.helm), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={
                **os.environ,
                "HELM_CACHE_HOME": str(self.root / "helm"),
                "HELM_CONFIG_HOME": str(self.root / "helm"),
                "HELM_DATA_HOME": str(self.root / "helm"),
            },
        )
        if result.returncode != 0:
            raise KubeNodeError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def ctr(self, *args: str) -> str:
        result = subprocess.run(
            [
                str(self.bin / "ctr"),
                "-a",
                str(self.root / "run" / "containerd.sock"),
                "-n",
                "k8s.io",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise KubeNodeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def expose(self, service_ip: str, port: int, target: str, target_port: int) -> None:
        """Let pods reach a loopback service (target:target_port) at service_ip:port."""
        self._dnat(service_ip, port, target, target_port)

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- last lines of {name}.log ---\n{_tail(self.root / 'logs' / f'{name}.log', lines)}"
            for name, _ in self._processes
        )

    # -- parts -------------------------------------------------------------------------------

    def _network(self) -> None:
        if BRIDGE not in _links():
            subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        # Per-interface: it goes with the bridge.
        subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{BRIDGE}.route_localnet=1"], check=True)
        self._dnat(SERVICE_IP, 443, self.address, self.api.port)

    def _dnat(self, ip: str, port: int, target: str, target_port: int) -> None:
        rule = [
            "PREROUTING",
            "-i",
            BRIDGE,
            "-d",
            f"{ip}/32",
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DNAT",
            "--to-destination",
            f"{target}:{target_port}",
        ]
        subprocess.run(["iptables", "-t", "nat", "-A", *rule], check=True, capture_output=True)
        self._nat.append(rule)

    def _etc(self, name: str) -> Path:
        return self.root / "etc" / name

    def _write_configs(self) -> None:
        for folder in (
            "etc",
            "run",
            "logs",
            "containerd",
            "kubelet",
            "pod-logs",
            "cni/net.d",
            "cni-ipam",
        ):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        kubelet_port, healthz_port = _free_ports(KUBELET_ADDRESS, 2)
        containerd_toml = f"""version = 2
root = "{self.root / "containerd"}"
state = "{self.root / "run" / "containerd"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.root / "run" / "containerd.sock"}"
[ttrpc]
  address = "{self.root / "run" / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (this sandbox), lowering oom_score_adj fails in runc's nsexec:
  # clamp it to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{self.bin / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.bin / "cni"}"
    conf_dir = "{self.root / "cni" / "net.d"}"
"""
        self._etc("containerd.toml").write_text(containerd_toml, encoding="utf-8")
        conflist = {
            "cniVersion": "1.0.0",
            "name": "ferry-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.root / "cni-ipam"),
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "loopback"},
            ],
        }
        (self.root / "cni" / "net.d" / "10-ferry-node.conflist").write_text(
            json.dumps(conflist, indent=2), encoding="utf-8"
        )
        sock = f"unix://{self.root / 'run' / 'containerd.sock'}"
        kubelet = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": KUBELET_ADDRESS,
            "port": kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": KUBELET_ADDRESS,
            "healthzPort": healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.api.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": sock,
            "imageServiceEndpoint": sock,
            "podLogsDir": str(self.root / "pod-logs"),
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "makeIPTablesUtilChains": False,
            # A shared machine's disk and memory are what they are: evict only when truly out.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "serializeImagePulls": False,
            "registerNode": True,
        }
        self._etc("kubelet.yaml").write_text(yaml.safe_dump(kubelet), encoding="utf-8")

    def _spawn(self, name: str, command: list[str]) -> None:
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]
        with open(self.root / "logs" / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        self._processes.append((name, process))

    def _wait(self, ready: object, what: str, timeout: float | None = None) -> None:
        assert callable(ready)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise KubeNodeError(
                        f"{name} exited with {process.returncode} while waiting for {what}\n"
                        + self.logs()
                    )
            if ready():
                return
            time.sleep(0.5)
        raise KubeNodeError(
            f"no {what} within {timeout or self.start_timeout:.0f}s\n" + self.logs()
        )

    def _node_ready(self) -> bool:
        result = self.kubectl(
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return result.stdout.strip() == "True"

    def _no_sandboxes(self) -> bool:
        try:
            return not self.ctr("containers", "ls", "-q").strip()
        except KubeNodeError:
            return True

    def _shim(self) -> str:
        return str(self.bin / "containerd-shim-runc-v2")

    def _stop_shims(self) -> None:
        """The shims outlive containerd by design; stop this node's (by executable)."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(proc / "exe") == self._shim():
                    os.kill(int(proc.name), 9)

    def _mounts(self) -> list[str]:
        prefix = str(self.root) + "/"
        with open("/proc/mounts", encoding="utf-8") as mounts:
            points = [line.split()[1] for line in mounts]
        return [
            p
            for p in points
            if p.startswith(prefix)
            or p.startswith("/run/netns/cni-")
            or p.startswith("/var/run/netns/cni-")
        ]


def describe_difference(before: HostState, after: HostState) -> str:
    """What differs, in words, for an assertion message."""
    parts = []
    for name, value in before.sysctls.items():
        if after.sysctls.get(name) != value:
            parts.append(f"{name} was {value}, is {after.sysctls.get(name)}")
    if after.links != before.links:
        parts.append(
            f"interfaces added {sorted(after.links - before.links)}, "
            f"removed {sorted(before.links - after.links)}"
        )
    if after.nat_rules != before.nat_rules:
        parts.append(f"nat rules added {sorted(set(after.nat_rules) - set(before.nat_rules))}")
    if after.kubepods_cgroups != before.kubepods_cgroups:
        parts.append(f"cgroups left {sorted(after.kubepods_cgroups - before.kubepods_cgroups)}")
    return "; ".join(parts) or "nothing"


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text(encoding="utf-8").strip()


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False)
    return [
        line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if ":" in line
    ]


def _nat_rules() -> list[str]:
    if shutil.which("iptables-save") is None:
        return []
    out = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False
    )
    return [line for line in out.stdout.splitlines() if line.startswith("-A ")]
