"""Bringing a real node up changes the machine (sysctls, interfaces, iptables, cgroups); tearing
it down gives all of it back, also when the test using it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.kube_api import ensure_binaries
from tests.support.kube_node import HostState, KubeNode, describe_difference, ferry_image


class _TestFailed(Exception):
    pass


def test_teardown_after_a_failed_test_leaves_the_machine_as_before(
    node_built: None, tmp_path: Path
) -> None:
    before = HostState.read()
    node = KubeNode(tmp_path / "node", ensure_binaries())
    with pytest.raises(_TestFailed), node:
        pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: hello, namespace: default}}
spec:
  restartPolicy: Never
  containers:
    - name: hello
      image: {ferry_image()}
      imagePullPolicy: Never
      command: [python3, -c, "print('hello from a real pod')"]
"""
        node.kubectl("apply", "-f", "-", input=pod)
        node.kubectl(
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/hello",
            "--timeout=180s",
            timeout=200,
        )
        assert "hello from a real pod" in node.kubectl("logs", "pod/hello").stdout
        during = HostState.read()
        # The node did change the machine (else this test proves nothing): the bridge and
        # a pod's veth came, and kubelet set its sysctls.
        assert during.links - before.links, "no interface was added while the node ran"
        assert during.nat_rules != before.nat_rules
        assert during.sysctls["kernel.panic"] == "10", "kubelet's kernel.panic not seen"
        raise _TestFailed  # a failing test: the teardown must still undo everything
    after = HostState.read()
    assert after == before, describe_difference(before, after)
