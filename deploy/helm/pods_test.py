"""The chart's pods for real: renders the chart (ci/default-values.yaml: TLS, tokens, gossip key;
four replicas, so one pod joins beyond the three seeds),
takes the StatefulSet's container spec (command, args, env, ports, probes, mounts, security
context) and runs one container per pod of the built image on a docker network whose aliases are
the pods' DNS names, each with its rendered environment (the downward API filled in); waits for
the probes; then runs the chart's `helm test` pod the same way, which must succeed.

Usage: python pods_test.py <mortar binary> <image>. Removes its containers, volumes, network and
files, also on failure.
"""

import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import test_chart  # noqa: E402

NAMESPACE = "ci"
READY_WAIT_S = 120


def sh(*args, check=True, capture=True):
    run = subprocess.run(list(args), capture_output=capture, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {run.returncode}: {run.stdout}{run.stderr}")
    return run


def expand(value, known):
    """Kubernetes' $(VAR) expansion of an env value, from the variables defined before it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: known.get(m.group(1), m.group(0)), value)


def environment(entries, pod_name, pod_ip):
    known = {}
    for entry in entries or []:
        if "value" in entry:
            known[entry["name"]] = expand(entry["value"], known)
        else:
            field = entry["valueFrom"]["fieldRef"]["fieldPath"]
            known[entry["name"]] = {"metadata.name": pod_name, "status.podIP": pod_ip}[field]
    return known


def docker_run(name, spec, pod_security, env, network, ip, aliases, mounts, detach):
    """`docker run` of one rendered container."""
    security = spec.get("securityContext", {})
    user = f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"
    args = ["docker", "run", "--name", name, "--network", network, "--user", user]
    if ip:
        args += ["--ip", ip]
    for alias in aliases:
        args += ["--network-alias", alias]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if "ALL" in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges:true"]
    for mount in spec.get("volumeMounts", []) or []:
        source = mounts[mount["name"]]
        if source == "tmpfs":
            args += ["--tmpfs", mount["mountPath"]]
        else:
            ro = ":ro" if mount.get("readOnly") else ""
            args += ["-v", f"{source}:{mount['mountPath']}{ro}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    args += ["-d"] if detach else []
    command = spec["command"]
    args += ["--entrypoint", command[0], spec["image"], *command[1:], *spec.get("args", [])]
    return sh(*args, check=False)


def probe(container, probe_spec, http_port):
    path = probe_spec["httpGet"]["path"]
    flag = {"/healthz": [], "/readyz": ["--ready"]}[path]
    run = sh("docker", "exec", container, "mortar", "health", "--http", f"127.0.0.1:{http_port}", *flag, check=False)
    return run.returncode == 0


def wait_ready(name, spec, http_port):
    """Until the container passes its startup and readiness probes; then its liveness probe."""
    deadline = time.time() + READY_WAIT_S
    while not (probe(name, spec["startupProbe"], http_port) and probe(name, spec["readinessProbe"], http_port)):
        if time.time() > deadline:
            logs = sh("docker", "logs", "--tail", "30", name, check=False)
            raise RuntimeError(f"{name} not ready within {READY_WAIT_S} s:\n{logs.stdout}{logs.stderr}")
        time.sleep(1)
    assert probe(name, spec["livenessProbe"], http_port), f"{name} fails its liveness probe"


def main():
    mortar, image = sys.argv[1], sys.argv[2]
    repository, tag = image.rsplit(":", 1)
    values = test_chart.values_of(test_chart.CHART / "ci" / "default-values.yaml")
    values["image"] = {"repository": repository, "tag": tag, "pullPolicy": "Never"}
    # One pod beyond the three seeds: it joins through the client Service.
    values["replicas"] = 4
    objects = test_chart.render(values, name="mortar", namespace=NAMESPACE)
    sts = test_chart.one(objects, "StatefulSet")
    pod_spec = sts["spec"]["template"]["spec"]
    spec = pod_spec["containers"][0]
    http_port = next(p["containerPort"] for p in spec["ports"] if p["name"] == "http")
    test_pod = next(p for p in objects["Pod"] if p["metadata"]["annotations"].get("helm.sh/hook") == "test")
    replicas = sts["spec"]["replicas"]
    seeds = values.get("seeds", 3)
    peers_domain = f"{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local"
    client_name = f"mortar.{NAMESPACE}.svc.cluster.local"

    tag_id = f"mortar-chart-{os.getpid()}"
    work = pathlib.Path(tempfile.mkdtemp(prefix="mortar-chart-"))
    containers, volumes = [], []
    subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 250)}"
    try:
        # The Secrets the values name, as files: TLS (cert-manager's layout) and the secrets.
        certs, tls, secrets = work / "certs", work / "tls", work / "secrets"
        sh(mortar, "cert", "ca", "--dir", str(certs))
        sh(mortar, "cert", "node", "--dir", str(certs), f"*.{peers_domain}", client_name, "127.0.0.1")
        tls.mkdir()
        secrets.mkdir()
        shutil.copy(certs / "node.pem", tls / "tls.crt")
        shutil.copy(certs / "node.key", tls / "tls.key")
        shutil.copy(certs / "ca.pem", tls / "ca.crt")
        for key in ["client-token", "admin-token", "gossip-key"]:
            (secrets / key).write_text(os.urandom(24).hex())
        for path in [tls, secrets, *tls.iterdir(), *secrets.iterdir()]:
            os.chown(path, 10001, 10001)
            os.chmod(path, 0o500 if path.is_dir() else 0o400)

        sh("docker", "network", "create", "--subnet", f"{subnet}.0/24", tag_id)
        for i in range(replicas):
            pod = f"{sts['metadata']['name']}-{i}"
            ip = f"{subnet}.{10 + i}"
            volume = f"{tag_id}-data-{i}"
            sh("docker", "volume", "create", volume)
            volumes.append(volume)
            env = environment(spec["env"], pod, ip)
            mounts = {"data": volume, "tmp": "tmpfs", "tls": str(tls), "secrets": str(secrets)}
            name = f"{tag_id}-{pod}"
            # The client Service holds ready pods only: a joining pod is not one yet.
            aliases = [f"{pod}.{peers_domain}"] + ([client_name] if i < seeds else [])
            run = docker_run(name, spec, pod_spec["securityContext"], env, tag_id, ip, aliases, mounts, detach=True)
            containers.append(name)
            if run.returncode != 0:
                raise RuntimeError(f"start {pod}: {run.stderr}")
        for name in containers:
            wait_ready(name, spec, http_port)
        members = sh("docker", "exec", containers[0], "mortar", "admin", "members").stdout
        active = [line for line in members.splitlines() if " active " in line]
        assert len(active) == replicas, f"{len(active)} active members of {replicas}:\n{members}"
        print(f"pods-test: {replicas} pods of the rendered StatefulSet ready (startup, readiness, liveness "
              f"probes), {replicas} active members ({replicas - seeds} joined beyond the seeds)")

        test_spec = test_pod["spec"]["containers"][0]
        test_env = environment(test_spec.get("env"), test_pod["metadata"]["name"], "")
        test_name = f"{tag_id}-test"
        run = docker_run(test_name, test_spec, test_pod["spec"]["securityContext"], test_env, tag_id, None, [],
                         {"tls": str(tls), "secrets": str(secrets)}, detach=False)
        containers.append(test_name)
        print(run.stdout.strip())
        if run.returncode != 0:
            raise RuntimeError(f"the helm test pod failed (exit {run.returncode}): {run.stdout}{run.stderr}")
        print("pods-test: the chart's helm test passed against them")

        # A seed loses its volume: its pod comes back empty at the same name and address.
        lost = 2
        pod = f"{sts['metadata']['name']}-{lost}"
        name, volume = f"{tag_id}-{pod}", f"{tag_id}-data-{lost}"
        sh("docker", "rm", "-f", name)
        sh("docker", "volume", "rm", "-f", volume)
        sh("docker", "volume", "create", volume)
        # The operator's repair: `helm upgrade --set repair.replaceSeeds={2}`; the pod's new spec.
        values["repair"] = {"replaceSeeds": [lost]}
        spec = test_chart.one(test_chart.render(values, name="mortar", namespace=NAMESPACE), "StatefulSet")["spec"][
            "template"]["spec"]["containers"][0]
        ip = f"{subnet}.{10 + lost}"
        env = environment(spec["env"], pod, ip)
        mounts = {"data": volume, "tmp": "tmpfs", "tls": str(tls), "secrets": str(secrets)}
        run = docker_run(name, spec, pod_spec["securityContext"], env, tag_id, ip,
                         [f"{pod}.{peers_domain}", client_name], mounts, detach=True)
        if run.returncode != 0:
            raise RuntimeError(f"restart {pod}: {run.stderr}")
        wait_ready(name, spec, http_port)
        members = sh("docker", "exec", containers[0], "mortar", "admin", "members").stdout
        active = [line for line in members.splitlines() if " active " in line]
        assert len(active) == replicas and not any(line.split()[0] == str(lost + 1) for line in active), members
        # And it restarts as the node it became.
        sh("docker", "restart", name)
        wait_ready(name, spec, http_port)
        run = docker_run(test_name + "-2", test_spec, test_pod["spec"]["securityContext"], test_env, tag_id, None, [],
                         {"tls": str(tls), "secrets": str(secrets)}, detach=False)
        containers.append(test_name + "-2")
        if run.returncode != 0:
            raise RuntimeError(f"the helm test pod failed after the replace: {run.stdout}{run.stderr}")
        print(f"pods-test: {pod} lost its volume and replaced node {lost + 1} in place; restarted; helm test passes")
    finally:
        for name in containers:
            sh("docker", "rm", "-f", "-v", name, check=False)
        for volume in volumes:
            sh("docker", "volume", "rm", "-f", volume, check=False)
        sh("docker", "network", "rm", tag_id, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
