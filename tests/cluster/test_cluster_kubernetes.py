"""deploy/kubernetes/: every manifest validates against the Kubernetes API schemas that
kubernetes-validate ships (offline: the schemas are inside the package), strictly (no unknown
field), for the oldest and newest Kubernetes versions the package knows of that we support; the
StatefulSet keeps the promises the README makes of it; its shell line finds the host number both
from the pod-index label and from the pod's name. No cluster runs here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())  # 1.27: before the pod-index label


def documents():
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version):
    docs = documents()
    assert {doc["kind"] for _, doc in docs} == {"StatefulSet", "Service", "PersistentVolumeClaim"}
    for _, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on the first error, naming it


def test_the_validator_refuses_what_it_should():
    """The check above means something: a wrong type and an unknown field are refused."""
    statefulset = next(doc for _, doc in documents() if doc["kind"] == "StatefulSet")
    broken = yaml.safe_load(yaml.safe_dump(statefulset))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
    broken = yaml.safe_load(yaml.safe_dump(statefulset))
    broken["spec"]["template"]["spec"]["containers"][0]["peers"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_statefulset_and_service_fit_together():
    docs = {doc["kind"]: doc for _, doc in documents()}
    sts, svc = docs["StatefulSet"], docs["Service"]
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == svc["metadata"]["name"] and svc["spec"]["clusterIP"] == "None"
    assert {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]} >= {"mirror"}
    container = spec["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    replicas, name, port = spec["replicas"], sts["metadata"]["name"], svc["spec"]["ports"][0]["port"]
    assert env["MIRROR_SUPERVISOR_PEERS"]["value"] == ",".join(f"{name}-{i}.{svc['metadata']['name']}:{port}"
                                                             for i in range(replicas))
    assert f'/{replicas}"' in container["args"][0], "--shard I/N with N = replicas"
    assert int(env["MIRROR_SUPERVISOR_COPIES"]["value"]) <= replicas
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["nvr"]["readOnly"] is True
    claim = next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == "nvr")["persistentVolumeClaim"]
    assert claim["readOnly"] is True and claim["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]


@pytest.mark.parametrize(("environment", "shard"), [
    ({"POD_INDEX": "2", "POD_NAME": "mirror-supervisor-2"}, "2/3"),
    ({"POD_INDEX": "", "POD_NAME": "mirror-supervisor-1"}, "1/3"),  # before Kubernetes 1.28: no label
])
def test_the_host_number_comes_from_the_label_or_the_pod_name(environment, shard):
    sts = next(doc for _, doc in documents() if doc["kind"] == "StatefulSet")
    line = sts["spec"]["template"]["spec"]["containers"][0]["args"][0]
    shown = line.replace("exec /opt/mirror-supervisor/bin/mirror-supervisor", "echo")
    out = subprocess.run(["/bin/sh", "-c", shown], env={"PATH": "/usr/bin:/bin", **environment},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["run", "--shard", shard, "--log-level", "INFO"]


def test_the_image_is_debian_12_with_debians_ffmpeg():
    text = (DEPLOY / "Containerfile").read_text()
    assert any(line.startswith("FROM debian:12") for line in text.splitlines())
    assert "apt-get install" in text and " ffmpeg " in text and "pip install" in text
