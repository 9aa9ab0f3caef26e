"""Offline tests of the Mortar chart (deploy/helm/check.sh runs them in CI).

Renders with the real Helm engine (helm-python-sdk), lints strictly, validates every rendered
object against the Kubernetes schemas of the oldest and newest supported versions
(kubernetes-validate --strict), and asserts what the chart promises.
"""

import copy
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from helm_python import chart as hc

CHART = pathlib.Path(__file__).parent / "mortar"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_OLDEST, KUBE_NEWEST = "1.27.0", "1.37.0"


def render(values, chart=CHART, name="mortar", namespace="prod"):
    """The rendered objects, by kind (a list each), NOTES.txt under "NOTES"."""
    out = hc.Chart.load(str(chart)).render(values, name=name, namespace=namespace)
    objects = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            objects["NOTES"] = [text]
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.setdefault(doc["kind"], []).append(doc)
    return objects


def values_of(path):
    return yaml.safe_load(path.read_text()) or {}


def one(objects, kind, name=None):
    found = [o for o in objects.get(kind, []) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container(objects):
    return one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def env(objects):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lints_strict_at_the_oldest_kubernetes(values):
    result = hc.lint(str(CHART), values_of(values), strict=True, kube_version=f"v{KUBE_OLDEST}")
    serious = [m for m in result["messages"] if m["severity"] >= 2]
    assert not serious and not result["errors"], result


@pytest.mark.parametrize("kube", [KUBE_OLDEST, KUBE_NEWEST])
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_object_is_valid_kubernetes(values, kube, tmp_path):
    objects = render(values_of(values))
    docs = [o for kind, items in objects.items() if kind != "NOTES" for o in items]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    validate = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    run = subprocess.run([str(validate), "--strict", "-k", kube, str(rendered)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # Only the CRDs (ServiceMonitor, Certificate) may lack a schema.
    for line in (run.stdout + run.stderr).splitlines():
        if "Couldn't find schema" in line:
            assert "ServiceMonitor" in line or "Certificate" in line, line


def test_the_seed_list_does_not_change_with_replicas():
    three = env(render({"replicas": 3}))["MORTAR_INITIAL_CLUSTER"]
    five = env(render({"replicas": 5}))["MORTAR_INITIAL_CLUSTER"]
    assert three == five
    assert three == ",".join(
        f"{i + 1}=mortar-{i}.mortar-peers.prod.svc.cluster.local:7100" for i in range(3)
    )
    # The whole pod template is the same: scaling restarts no pod.
    t3 = one(render({"replicas": 3}), "StatefulSet")["spec"]["template"]
    t5 = one(render({"replicas": 5}), "StatefulSet")["spec"]["template"]
    assert t3 == t5


def test_statefulset_shape():
    objects = render(values_of(CHART / "ci" / "default-values.yaml"))
    sts = one(objects, "StatefulSet")
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "mortar-peers"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["allowPrivilegeEscalation"] is False
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "resources" in c and c["resources"]["requests"]
    e = env(objects)
    assert e["MORTAR_TLS_CERT"] == "/etc/mortar/tls/tls.crt"
    assert e["MORTAR_ADMIN_TOKEN_FILE"] == "/etc/mortar/secrets/admin-token"
    assert e["MORTAR_GOSSIP_KEY_FILE"] == "/etc/mortar/secrets/gossip-key"
    assert e["MORTAR_GOSSIP_ADVERTISE"] == "$(POD_IP):7100"
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert "preferredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    claim = spec["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    assert not any(k.startswith("helm.sh") or "version" in k for k in claim["metadata"].get("labels", {}))


def test_peer_service_is_headless_with_both_ports_and_the_client_service_is_not():
    objects = render({})
    peers = one(objects, "Service", "mortar-peers")["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    ports = {(p["name"], p["protocol"]) for p in peers["ports"]}
    assert {("grpc", "TCP"), ("gossip", "UDP"), ("http", "TCP")} <= ports
    client = one(objects, "Service", "mortar")["spec"]
    assert "publishNotReadyAddresses" not in client and client.get("clusterIP") != "None"
    assert [p["name"] for p in client["ports"]] == ["grpc"]


def test_pdb_allows_one_down_and_is_absent_at_one_replica():
    assert one(render({}), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "PodDisruptionBudget" not in render({"replicas": 1, "seeds": 1})


def test_optional_objects_follow_their_values():
    scaled = render(values_of(CHART / "ci" / "scaled-values.yaml"))
    cert = one(scaled, "Certificate")["spec"]
    assert "*.mortar-peers.prod.svc.cluster.local" in cert["dnsNames"]
    assert {"server auth", "client auth"} <= set(cert["usages"])
    assert one(scaled, "ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/metrics"
    assert env(scaled)["MORTAR_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4317"
    assert "MORTAR_OTLP_ENDPOINT" not in env(render({}))
    plain = render({})
    assert "Certificate" not in plain and "ServiceMonitor" not in plain
    assert "WARNING: no existingSecret" in plain["NOTES"][0]
    assert "WARNING" not in render(values_of(CHART / "ci" / "default-values.yaml"))["NOTES"][0]


def test_helm_test_pod_checks_every_member_and_calls_an_actor():
    objects = render({"replicas": 5})
    pod = [p for p in objects["Pod"] if p["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    assert len(pod) == 1
    script = pod[0]["spec"]["containers"][0]["args"][0]
    assert "seq 0 4" in script and "health --ready" in script and "call counter" in script


def test_selector_and_volume_claims_never_change_between_versions(tmp_path):
    newer = tmp_path / "mortar"
    shutil.copytree(CHART, newer)
    meta = yaml.safe_load((newer / "Chart.yaml").read_text())
    meta["version"], meta["appVersion"] = "9.9.9", "9.9.9"
    (newer / "Chart.yaml").write_text(yaml.safe_dump(meta))
    values = values_of(CHART / "ci" / "default-values.yaml")
    old, new = one(render(values), "StatefulSet")["spec"], one(render(values, chart=newer), "StatefulSet")["spec"]
    assert old["selector"] == new["selector"]
    assert old["volumeClaimTemplates"] == new["volumeClaimTemplates"]
    assert old["serviceName"] == new["serviceName"] and old["podManagementPolicy"] == new["podManagementPolicy"]
    assert old["template"]["metadata"]["labels"] != new["template"]["metadata"]["labels"]  # the version label moves


@pytest.mark.parametrize(
    "bad",
    [
        {"replicas": "3"},
        {"seeds": 2},
        {"replicaz": 3},
        {"tls": {"enabled": "yes"}},
        {"persistence": {"size": "lots"}},
        {"topologySpread": {"whenUnsatisfiable": "Sometimes"}},
        {"otlpEndpoint": "otel:4317"},
    ],
    ids=repr,
)
def test_bad_values_are_rejected_by_the_schema(bad):
    values = copy.deepcopy(bad)
    with pytest.raises(Exception) as raised:
        render(values)
    assert "schema" in str(raised.value).lower() or "values" in str(raised.value).lower(), raised.value


def test_impossible_combinations_fail_with_a_reason():
    with pytest.raises(Exception, match="seeds"):
        render({"replicas": 2, "seeds": 3})
    with pytest.raises(Exception, match="tls.secretName"):
        render({"tls": {"enabled": True}})
