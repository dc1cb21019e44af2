from pathlib import Path

from ferry.api.loader import load_manifests
from ferry.controller.jobs import build_job, build_request_job, credential_secret, secret_refs
from ferry.controller.match_report_decision import MATCH_REPORTS
from ferry.settings import OperatorSettings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"


def test_job_is_owned_bounded_non_root_and_carries_secrets_as_files_only() -> None:
    m = load_manifests([EXAMPLES])
    refs = secret_refs(m.environments.values(), m.templates.values())
    assert refs, "the example environments reference Secrets"
    job = build_job(namespace="ferry", workflow="src-to-tgt", workflow_uid="u1",
                    run_id="0123456789", trigger="Manual", secrets=refs,
                    settings=OperatorSettings())
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"] == "src-to-tgt-0123456789"
    assert meta["labels"]["ferry.dev/workflow"] == "src-to-tgt"
    assert meta["labels"]["ferry.dev/run"] == "0123456789"
    assert meta["ownerReferences"][0]["kind"] == "Workflow"
    assert meta["ownerReferences"][0]["controller"] is True
    assert spec["backoffLimit"] >= 0 and spec["activeDeadlineSeconds"] > 0
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert container["command"] == ["ferry"]
    assert container["args"] == ["sync-job", "--workflow", "ferry/src-to-tgt",
                                 "--run", "0123456789"]
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert mounted == set(refs)
    assert {e["name"] for e in container["env"]} == {"FERRY_SECRETS_DIR", "FERRY_STATE"}


def test_a_postgres_url_reaches_the_job_by_secret_reference_not_value() -> None:
    settings = OperatorSettings(state_url_secret="ferry-db/url")
    job = build_job(namespace="n", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={}, settings=settings)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FERRY_STATE"] == {"name": "FERRY_STATE", "valueFrom": {
        "secretKeyRef": {"name": "ferry-db", "key": "url"}}}


def test_job_name_fits_label_limits_for_long_workflow_names() -> None:
    job = build_job(namespace="n", workflow="w" * 63, workflow_uid="u", run_id="a" * 10,
                    trigger="Schedule", secrets={}, settings=OperatorSettings())
    assert len(job["metadata"]["name"]) <= 63


def test_with_a_gateway_each_job_mounts_its_own_credential_secret() -> None:
    settings = OperatorSettings(gateway_url="https://ferry-gateway.ns.svc:443",
                                job_signing_key_file="/etc/ferry/job-signing/tls.key")
    job = build_job(namespace="n", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={}, settings=settings)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["FERRY_GATEWAY_URL"] == "https://ferry-gateway.ns.svc:443"
    assert env["FERRY_GATEWAY_TOKEN_FILE"].endswith("/token")
    volume = next(v for v in pod["volumes"] if v["name"] == "gateway")
    assert volume["secret"]["secretName"] == "w-aaaaaaaaaa-gateway"
    secret = credential_secret({**job, "metadata": {**job["metadata"], "uid": "job-uid"}},
                               "signed-token", "CA PEM")
    assert secret["metadata"]["name"] == "w-aaaaaaaaaa-gateway"
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "w-aaaaaaaaaa", "uid": "job-uid"}]
    assert secret["stringData"] == {"token": "signed-token", "ca.crt": "CA PEM"}
    # Nothing of the credential is in the Job itself.
    assert "signed-token" not in str(job)


def test_without_a_signing_key_jobs_get_no_gateway_credential() -> None:
    settings = OperatorSettings(gateway_url="https://ferry-gateway.ns.svc:443")
    job = build_job(namespace="n", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={}, settings=settings)
    assert not [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "gateway"]


def test_entra_secrets_and_workload_identity_tokens_reach_the_job_as_files(
        tmp_path: Path) -> None:
    from ferry.controller.jobs import token_files

    t2t = load_manifests([EXAMPLES.parent / "tenant-to-tenant"])
    refs = secret_refs(t2t.environments.values(), t2t.templates.values())
    assert refs == {"contoso-graph": {"app.pem"}, "fabrikam-graph": {"app.pem"}}
    assert token_files(t2t.environments.values()) == set()

    text = (EXAMPLES.parent / "ad-to-entra" / "environments.yaml").read_text().replace(
        "      clientSecret:\n        secretKeyRef: {name: fabrikam-graph, key: client-secret}\n",
        "      workloadIdentity: {}\n")
    (tmp_path / "environments.yaml").write_text(text)
    m = load_manifests([tmp_path / "environments.yaml"])
    tokens = token_files(m.environments.values())
    assert tokens == {"/var/run/secrets/azure/tokens/azure-identity-token"}
    job = build_job(namespace="n", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={}, settings=OperatorSettings(), tokens=tokens)
    pod = job["spec"]["template"]["spec"]
    [projected] = [v for v in pod["volumes"] if "projected" in v]
    [source] = projected["projected"]["sources"]
    assert source["serviceAccountToken"] == {"path": "azure-identity-token",
                                             "audience": "api://AzureADTokenExchange",
                                             "expirationSeconds": 3600}
    mount = next(m for m in pod["containers"][0]["volumeMounts"]
                 if m["name"] == projected["name"])
    assert mount["mountPath"] == "/var/run/secrets/azure/tokens" and mount["readOnly"]



def test_a_match_report_job_has_the_run_pod_shape_and_its_own_gateway_credential() -> None:
    settings = OperatorSettings(gateway_url="https://ferry-gateway.ns.svc:443",
                                job_signing_key_file="/etc/ferry/job-signing/tls.key")
    run = build_job(namespace="n", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={"src-ad": {"password"}}, settings=settings)
    report = build_request_job(
        namespace="n", workflow="w", workflow_uid="u", request_id="m1", name="w-matches-m1",
        labels={MATCH_REPORTS.kind.label: "w", "ferry.dev/run": "m1"},
        component=MATCH_REPORTS.component, command=MATCH_REPORTS.command,
        trigger=MATCH_REPORTS.trigger, secrets={"src-ad": {"password"}}, settings=settings)
    pod, run_pod = report["spec"]["template"]["spec"], run["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["match-report-job", "--workflow", "n/w",
                                            "--request", "m1"]
    assert "ferry.dev/workflow" not in report["metadata"]["labels"]
    # The run's pod but for its own credential Secret: the same account, env and volumes.
    assert pod["serviceAccountName"] == run_pod["serviceAccountName"]
    assert pod["containers"][0]["env"] == run_pod["containers"][0]["env"]
    gateway = next(v for v in pod["volumes"] if v["name"] == "gateway")
    assert gateway["secret"]["secretName"] == "w-matches-m1-gateway"
    assert [v for v in pod["volumes"] if v["name"] != "gateway"] == \
        [v for v in run_pod["volumes"] if v["name"] != "gateway"]
    assert pod["containers"][0]["volumeMounts"] == run_pod["containers"][0]["volumeMounts"]
