/**
 * The CRD and the kustomize manifests under `k8s/`: every kustomization renders with real
 * `kubectl kustomize` and says what the deployment modes promise; against a real kube-apiserver the
 * CRD validates, defaults and prints as documented and every kustomization passes a server-side
 * dry run.
 */

import assert from "node:assert/strict";
import type { DaemonSet, Deployment } from "kubernetes-types/apps/v1.d.ts";
import type { Container, PodSpec, Service } from "kubernetes-types/core/v1.d.ts";
import type { PodDisruptionBudget } from "kubernetes-types/policy/v1.d.ts";
import type {
  ClusterRole,
  ClusterRoleBinding,
  PolicyRule,
  Role,
} from "kubernetes-types/rbac/v1.d.ts";
import type { CustomResourceDefinition } from "kubernetes-types/apiextensions/v1.d.ts";
import { parseForwarderSpec } from "../lib/spec.ts";
import {
  UNDYING_PROXY_API_VERSION,
  UNDYING_PROXY_KIND,
  type UnDyingProxy,
  type UnDyingProxyStatus,
} from "../k8s/undying_proxy_types.ts";
import { type ControlPlane, integrationTest } from "./_support/control_plane.ts";
import { installMonitoringCrdStubs, serverDryRun } from "./_support/dry_run.ts";
import {
  findManifest,
  type Manifest,
  parseManifests,
  projectVersion,
  readManifest,
  renderKustomization,
  repoRoot,
} from "./_support/kustomize.ts";

const SAMPLES = [
  "k8s/samples/tcp.yaml",
  "k8s/samples/udp.yaml",
  "k8s/samples/game_server.yaml",
  "k8s/samples/legacy_go_operator.yaml",
  "k8s/samples/restricted.yaml",
  "k8s/samples/proxy_protocol.yaml",
];
const OPERATOR_NAMESPACE = "undying-proxy";

/** Every directory under k8s/ holding a kustomization, relative to the repository root. */
async function kustomizationDirs(dir = "k8s"): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${repoRoot}${dir}`)) {
    if (entry.isDirectory) found.push(...await kustomizationDirs(`${dir}/${entry.name}`));
    if (entry.isFile && ["kustomization.yaml", "Kustomization"].includes(entry.name)) {
      found.push(dir);
    }
  }
  return found.sort();
}

async function render(path: string): Promise<Manifest[]> {
  return parseManifests(await renderKustomization(path));
}

function podSpec(workload: Deployment | DaemonSet): PodSpec {
  const spec = workload.spec?.template.spec;
  assert.ok(spec, "workload has a pod template");
  return spec;
}

function operatorContainer(workload: Deployment | DaemonSet): Container {
  const container = podSpec(workload).containers.find((c) => c.name === "undying-proxy");
  assert.ok(container, "pod template has the undying-proxy container");
  return container;
}

function podLabels(workload: Deployment | DaemonSet): Record<string, string> {
  return workload.spec?.template.metadata?.labels ?? {};
}

/** True when every key/value of `selector` is among `labels` (and the selector is not empty). */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string>) {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

function flagValue(container: Container, flag: string): string | undefined {
  const arg = container.args?.find((a) => a.startsWith(`${flag}=`));
  return arg?.slice(flag.length + 1);
}

Deno.test("every kustomization under k8s/ renders with kubectl kustomize", async () => {
  const dirs = await kustomizationDirs();
  for (
    const expected of [
      "k8s/crd",
      "k8s/daemonset",
      "k8s/default",
      "k8s/prometheus",
      "k8s/metrics-plain",
    ]
  ) {
    assert.ok(dirs.includes(expected), `${expected} is a kustomization (found ${dirs})`);
  }
  for (const dir of dirs) {
    const objects = await render(dir);
    if (dir === "k8s/metrics-plain") continue; // Patches only: renders nothing on its own.
    assert.ok(objects.length > 0, `${dir} renders at least one object`);
  }
});

Deno.test("default: 3 node-spread replicas with probes, resources and a restricted context", async () => {
  const objects = await render("k8s/default");
  const deployment = findManifest<Deployment>(objects, "Deployment", "undying-proxy");
  assert.equal(deployment.metadata?.namespace, OPERATOR_NAMESPACE);
  assert.equal(deployment.spec?.replicas, 3);
  const pod = podSpec(deployment);
  const byHost = pod.topologySpreadConstraints?.find((c) =>
    c.topologyKey === "kubernetes.io/hostname"
  );
  assert.equal(byHost?.whenUnsatisfiable, "DoNotSchedule");
  assert.ok(selects(byHost?.labelSelector?.matchLabels, podLabels(deployment)));
  assert.equal(pod.serviceAccountName, "undying-proxy");
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault");
  assert.deepEqual(pod.securityContext?.sysctls, [
    { name: "net.ipv4.ip_unprivileged_port_start", value: "0" },
  ], "ports below 1024 can be bound without capabilities");

  const container = operatorContainer(deployment);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  assert.deepEqual(container.securityContext?.capabilities?.drop, ["ALL"]);
  assert.equal(container.securityContext?.capabilities?.add, undefined);
  assert.ok(container.resources?.requests?.cpu && container.resources.requests.memory);
  assert.ok(container.resources?.limits?.memory);

  const healthPort = container.ports?.find((p) => p.name === "health")?.containerPort;
  assert.equal(healthPort, 8081);
  assert.equal(flagValue(container, "--health-probe-bind-address"), `:${healthPort}`);
  assert.equal(container.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(container.livenessProbe?.httpGet?.port, "health");
  assert.equal(container.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(container.readinessProbe?.httpGet?.port, "health");
  const metricsPort = container.ports?.find((p) => p.name === "metrics")?.containerPort;
  assert.equal(flagValue(container, "--metrics-bind-address"), `:${metricsPort}`);

  assert.equal(flagValue(container, "--operator-namespace"), "$(POD_NAMESPACE)");
  const fieldRefs = Object.fromEntries(
    (container.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
  );
  assert.deepEqual(fieldRefs, {
    POD_NAME: "metadata.name",
    POD_NAMESPACE: "metadata.namespace",
    NODE_NAME: "spec.nodeName",
  });
});

Deno.test("default: the LoadBalancer Services and the PDB select the operator pods", async () => {
  const objects = await render("k8s/default");
  const deployment = findManifest<Deployment>(objects, "Deployment", "undying-proxy");
  const container = operatorContainer(deployment);
  const labels = podLabels(deployment);
  for (const protocol of ["TCP", "UDP"] as const) {
    const flag = `--${protocol.toLowerCase()}-service-to-manage`;
    const name = flagValue(container, flag);
    assert.equal(name, `undying-proxy-${protocol.toLowerCase()}`, flag);
    const service = findManifest<Service>(objects, "Service", name);
    assert.equal(service.spec?.type, "LoadBalancer");
    assert.equal(service.spec?.externalTrafficPolicy, "Local");
    assert.ok(selects(service.spec?.selector, labels), `${name} selects the pods`);
    // The Go operator's shape: its placeholders (the port range stays pinned) and a patchable
    // loadBalancerIP, so applying this over a Go install leaves the load balancer as it is.
    assert.deepEqual(
      service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort, p.protocol]),
      [
        ["any-port", 1234, 1234, protocol],
        ["lowest-port", 1235, 1235, protocol],
        ["highest-port", 33333, 33333, protocol],
      ],
      `${name}: the Go operator's placeholder ports`,
    );
    assert.equal(service.spec?.loadBalancerIP, "", `${name}: loadBalancerIP there to be replaced`);
  }
  const pdb = findManifest<PodDisruptionBudget>(objects, "PodDisruptionBudget", "undying-proxy");
  assert.ok(selects(pdb.spec?.selector?.matchLabels, labels), "the PDB selects the pods");
  assert.ok(selects(deployment.spec?.selector.matchLabels, labels));
  for (const object of objects) {
    const clusterScoped = [
      "Namespace",
      "CustomResourceDefinition",
      "ClusterRole",
      "ClusterRoleBinding",
    ];
    if (clusterScoped.includes(object.kind)) continue;
    assert.equal(object.metadata.namespace, OPERATOR_NAMESPACE, `${object.kind} namespace`);
  }
});

Deno.test("default and daemonset ship the image tagged with the deno.json version", async () => {
  const version = await projectVersion();
  const deployment = findManifest<Deployment>(
    await render("k8s/default"),
    "Deployment",
    "undying-proxy",
  );
  const daemonSet = findManifest<DaemonSet>(
    await render("k8s/daemonset"),
    "DaemonSet",
    "undying-proxy",
  );
  for (const workload of [deployment, daemonSet]) {
    assert.equal(operatorContainer(workload).image, `ghcr.io/sfact/undying-proxy:${version}`);
  }
});

Deno.test("daemonset: host network on public-IP nodes, no LoadBalancer, no Service management", async () => {
  const objects = await render("k8s/daemonset");
  assert.ok(!objects.some((o) => o.kind === "Deployment"), "no Deployment left");
  const services = objects.filter((o) => o.kind === "Service") as unknown as Service[];
  assert.ok(services.every((s) => s.spec?.type !== "LoadBalancer"));
  const daemonSet = findManifest<DaemonSet>(objects, "DaemonSet", "undying-proxy");
  const pod = podSpec(daemonSet);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assert.deepEqual(pod.nodeSelector, { "undying-proxy/public-ip": "true" });
  assert.equal(pod.topologySpreadConstraints, undefined);
  assert.equal(pod.securityContext?.sysctls, undefined, "no network sysctls with host network");
  const container = operatorContainer(daemonSet);
  assert.equal(flagValue(container, "--tcp-service-to-manage"), "");
  assert.equal(flagValue(container, "--udp-service-to-manage"), "");
  assert.equal(flagValue(container, "--operator-namespace"), "$(POD_NAMESPACE)");
  assert.equal(flagValue(container, "--metrics-bind-address"), ":8080");
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  const namespace = findManifest<Manifest>(objects, "Namespace", OPERATOR_NAMESPACE);
  assert.equal(namespace.metadata.labels?.["pod-security.kubernetes.io/enforce"], "privileged");
});

/** Every (apiGroup, resource, verb) a set of rules grants, as "group/resource:verb". */
function grants(rules: readonly PolicyRule[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const rule of rules ?? []) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) out.add(`${group}/${resource}:${verb}`);
      }
    }
  }
  return out;
}

Deno.test("rbac: the Role grants only what the operator uses, never create/delete or *", async () => {
  const objects = await render("k8s/rbac");
  const role = findManifest<Role>(objects, "Role", "undying-proxy");
  const granted = grants(role.rules);
  for (const grant of granted) {
    assert.ok(!grant.includes("*"), `no wildcard: ${grant}`);
    const verb = grant.split(":")[1];
    assert.ok(verb !== "delete" && verb !== "deletecollection", `no delete: ${grant}`);
    if (verb === "create") assert.match(grant, /\/events:create$/, `only Events are created`);
  }
  for (
    const needed of [
      "proxy.sfact.io/undyingproxies:watch",
      "proxy.sfact.io/undyingproxies:patch",
      "proxy.sfact.io/undyingproxies/status:patch",
      "proxy.sfact.io/undyingproxies/finalizers:update",
      "/services:watch",
      "/services:update",
      "/services:patch",
      "/events:create",
      "events.k8s.io/events:create",
    ]
  ) assert.ok(granted.has(needed), `Role grants ${needed}`);
});

Deno.test("rbac-cluster: the ClusterRole leaves Services to the namespaced Role", async () => {
  const objects = parseManifests(
    await renderKustomization("k8s/rbac-cluster", { namespace: "proxies-system" }),
  );
  const clusterRole = findManifest<ClusterRole>(objects, "ClusterRole", "undying-proxy");
  const granted = [...grants(clusterRole.rules)];
  assert.ok(granted.includes("proxy.sfact.io/undyingproxies:watch"));
  assert.ok(!granted.some((g) => g.startsWith("/services")), "no Services cluster-wide");
  const binding = findManifest<ClusterRoleBinding>(objects, "ClusterRoleBinding", "undying-proxy");
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: "undying-proxy", namespace: "proxies-system" },
  ]);
  findManifest<Role>(objects, "Role", "undying-proxy");
});

/** The fields of a Prometheus Operator ServiceMonitor this test reads. */
interface ServiceMonitor {
  metadata: { namespace?: string };
  spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
}

Deno.test("prometheus component: the ServiceMonitor scrapes the metrics Service port", async () => {
  const objects = parseManifests(
    await renderKustomization("k8s/default", { components: ["k8s/prometheus"] }),
  );
  const monitor = findManifest<ServiceMonitor>(objects, "ServiceMonitor", "undying-proxy");
  assert.equal(monitor.metadata.namespace, OPERATOR_NAMESPACE);
  const spec = monitor.spec;
  const services = (objects.filter((o) => o.kind === "Service") as unknown as Service[])
    .filter((s) => selects(spec.selector.matchLabels, s.metadata?.labels ?? {}));
  assert.deepEqual(services.map((s) => s.metadata?.name), ["undying-proxy-metrics"]);
  const portNames = services[0]?.spec?.ports?.map((p) => p.name);
  assert.ok(spec.endpoints.every((e) => portNames?.includes(e.port)));
  assert.ok(!(await render("k8s/default")).some((o) => o.kind === "ServiceMonitor"));
});

Deno.test("default install: HTTPS and authed metrics (flag defaults), review RBAC for the operator, a reader role", async () => {
  for (
    const [path, kind] of [["k8s/default", "Deployment"], ["k8s/daemonset", "DaemonSet"]] as const
  ) {
    const objects = parseManifests(
      await renderKustomization(path, {
        namespace: "proxies-system",
        components: ["k8s/prometheus"],
      }),
    );
    const workload = findManifest<Deployment | DaemonSet>(objects, kind, "undying-proxy");
    const container = operatorContainer(workload);
    assert.ok(
      !container.args?.some((arg) => /^--metrics-(secure|authed)/.test(arg)),
      `${path}: the defaults (true in operator mode) apply`,
    );

    const auth = findManifest<ClusterRole>(objects, "ClusterRole", "undying-proxy-metrics-auth");
    assert.deepEqual([...grants(auth.rules)].sort(), [
      "authentication.k8s.io/tokenreviews:create",
      "authorization.k8s.io/subjectaccessreviews:create",
    ]);
    const binding = findManifest<ClusterRoleBinding>(
      objects,
      "ClusterRoleBinding",
      "undying-proxy-metrics-auth",
    );
    assert.equal(binding.roleRef.name, "undying-proxy-metrics-auth");
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "undying-proxy", namespace: "proxies-system" },
    ], `${path}: bound to the pods' ServiceAccount in the overlay's namespace`);
    assert.equal(podSpec(workload).serviceAccountName, "undying-proxy");

    const reader = findManifest<ClusterRole>(
      objects,
      "ClusterRole",
      "undying-proxy-metrics-reader",
    );
    assert.deepEqual(reader.rules, [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }]);

    const monitor = findManifest<Manifest & { spec: { endpoints: Record<string, unknown>[] } }>(
      objects,
      "ServiceMonitor",
      "undying-proxy",
    );
    assert.equal(monitor.spec.endpoints[0]?.["scheme"], "https");
    assert.match(String(monitor.spec.endpoints[0]?.["bearerTokenFile"]), /serviceaccount\/token$/);

    // The opt-out: plain HTTP for the operator and the ServiceMonitor.
    const plain = parseManifests(
      await renderKustomization(path, {
        namespace: "proxies-system",
        components: ["k8s/prometheus", "k8s/metrics-plain"],
      }),
    );
    const plainContainer = operatorContainer(
      findManifest<Deployment | DaemonSet>(plain, kind, "undying-proxy"),
    );
    assert.equal(flagValue(plainContainer, "--metrics-secure"), "false", path);
    assert.equal(flagValue(plainContainer, "--metrics-authed"), "false", path);
    const plainMonitor = findManifest<
      Manifest & { spec: { endpoints: Record<string, unknown>[] } }
    >(
      plain,
      "ServiceMonitor",
      "undying-proxy",
    );
    assert.deepEqual(plainMonitor.spec.endpoints[0], {
      port: "metrics",
      path: "/metrics",
      interval: "30s",
      honorLabels: true,
    });
  }
});

Deno.test("samples are UnDyingProxy objects the forwarding engine accepts", async () => {
  for (const path of SAMPLES) {
    const sample = await readManifest(path) as unknown as UnDyingProxy;
    assert.equal(sample.apiVersion, UNDYING_PROXY_API_VERSION, path);
    assert.equal(sample.kind, UNDYING_PROXY_KIND, path);
    assert.equal(sample.metadata.namespace, undefined, `${path} leaves the namespace to kubectl`);
    const parsed = parseForwarderSpec(`ns/${sample.metadata.name}`, sample.spec);
    assert.ok(parsed.ok, `${path}: ${JSON.stringify(parsed)}`);
  }
  const legacy = await readManifest(
    "k8s/samples/legacy_go_operator.yaml",
  ) as unknown as UnDyingProxy;
  assert.equal(
    legacy.spec?.udp?.readTimeoutSeconds,
    undefined,
    "the legacy sample has no timeouts",
  );
  const both = await readManifest("k8s/samples/game_server.yaml") as unknown as UnDyingProxy;
  assert.ok(both.spec?.tcp && both.spec.udp, "the game server sample forwards both protocols");
});

// ---- against the real API server ----

/** A minimal UnDyingProxy manifest (JSON is YAML) with the given name and spec. */
function proxyManifest(name: string, spec: unknown): string {
  return JSON.stringify({
    apiVersion: UNDYING_PROXY_API_VERSION,
    kind: UNDYING_PROXY_KIND,
    metadata: { name },
    spec,
  });
}

const VALID_TCP = { listenPort: 7000, targetPort: 7001, targetHost: "echo.default.svc" };

/** Server-side dry-run apply of `manifest` into `namespace`. */
function dryRun(cp: ControlPlane, namespace: string, manifest: string) {
  return cp.kubectl(
    ["apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-"],
    { stdin: manifest },
  );
}

async function getProxy(cp: ControlPlane, namespace: string, name: string): Promise<UnDyingProxy> {
  const json = await cp.kubectlOk(["get", "undyingproxy", name, "-n", namespace, "-o", "json"]);
  return JSON.parse(json) as UnDyingProxy;
}

integrationTest("CRD: Established, with its names, short name and printer columns", async (cp) => {
  const crd = JSON.parse(
    await cp.kubectlOk(["get", "crd", "undyingproxies.proxy.sfact.io", "-o", "json"]),
  ) as CustomResourceDefinition;
  const established = crd.status?.conditions?.find((c) => c.type === "Established");
  assert.equal(established?.status, "True");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.equal(crd.status?.acceptedNames?.kind, "UnDyingProxy");
  assert.deepEqual(crd.status?.acceptedNames?.shortNames, ["undp"]);
  const version = crd.spec.versions.find((v) => v.name === "v1alpha1");
  assert.ok(version?.served && version.storage && version.subresources?.status);
  const resources = await cp.kubectlOk(["api-resources", "--api-group=proxy.sfact.io"]);
  assert.match(
    resources,
    /undyingproxies\s+undp\s+proxy\.sfact\.io\/v1alpha1\s+true\s+UnDyingProxy/,
  );
});

integrationTest(
  "samples are accepted and the API server fills in UDP timeouts 30 and 5",
  async (cp) => {
    const ns = await cp.createNamespace("samples");
    await cp.kubectlOk(["apply", "--server-side", "-n", ns, "-k", `${repoRoot}k8s/samples`]);
    const legacy = await getProxy(cp, ns, "game-server-1001");
    assert.equal(legacy.spec?.udp?.readTimeoutSeconds, 30);
    assert.equal(legacy.spec?.udp?.writeTimeoutSeconds, 5);
    assert.equal(legacy.spec?.tcp?.targetHost, "my-game-server-1001.game-ns.svc.cluster.local");
    const wireguard = await getProxy(cp, ns, "wireguard");
    assert.equal(wireguard.spec?.udp?.readTimeoutSeconds, 180, "an explicit value is kept");
    const game = await getProxy(cp, ns, "game-server-27015");
    assert.equal(game.spec?.udp?.writeTimeoutSeconds, 5);
    assert.equal(game.spec?.udp?.readTimeoutSeconds, 60);
    const names = await cp.kubectlOk(["get", "undp", "-n", ns, "-o", "name"]);
    assert.equal(names.trim().split("\n").length, SAMPLES.length);
  },
);

integrationTest("invalid objects are refused with messages naming field and rule", async (cp) => {
  const ns = await cp.createNamespace("invalid");
  const longName = "a".repeat(64);
  const cases: [string, string, unknown, RegExp][] = [
    [
      "port 0",
      "p0",
      { tcp: { ...VALID_TCP, listenPort: 0 } },
      /spec\.tcp\.listenPort.*greater than or equal to 1/,
    ],
    [
      "port 70000",
      "p70000",
      { udp: { ...VALID_TCP, targetPort: 70000 } },
      /spec\.udp\.targetPort.*less than or equal to 65535/,
    ],
    [
      "a string port",
      "pstr",
      { tcp: { ...VALID_TCP, listenPort: "80" } },
      /spec\.tcp\.listenPort.*(must be of type integer|expected numeric)/,
    ],
    [
      "empty targetHost",
      "empty",
      { tcp: { ...VALID_TCP, targetHost: "" } },
      /spec\.tcp\.targetHost.*at least 1 chars? long/,
    ],
    [
      "a URL as targetHost",
      "url",
      { tcp: { ...VALID_TCP, targetHost: "http://x" } },
      /spec\.tcp\.targetHost.*must be a DNS name .* or an IP address/,
    ],
    ["a 254-char targetHost", "longhost", {
      tcp: { ...VALID_TCP, targetHost: `${"a".repeat(62)}.`.repeat(4) + "ab" },
    }, /spec\.tcp\.targetHost.*253/],
    [
      "a missing targetHost",
      "nohost",
      { tcp: { listenPort: 1, targetPort: 2 } },
      /spec\.tcp\.targetHost: Required value/,
    ],
    [
      "read timeout -1",
      "rt",
      { udp: { ...VALID_TCP, readTimeoutSeconds: -1 } },
      /spec\.udp\.readTimeoutSeconds.*greater than or equal to 0/,
    ],
    [
      "write timeout -1",
      "wt",
      { udp: { ...VALID_TCP, writeTimeoutSeconds: -1 } },
      /spec\.udp\.writeTimeoutSeconds.*greater than or equal to 0/,
    ],
    [
      "a name with a dot",
      "game.server",
      { tcp: VALID_TCP },
      /metadata\.name: Invalid value.*must not contain '\.'/,
    ],
    [
      "a 64-character name",
      longName,
      { tcp: VALID_TCP },
      /metadata\.name: Invalid value.*must be at most 63 characters/,
    ],
  ];
  for (const [what, name, spec, expected] of cases) {
    const result = await dryRun(cp, ns, proxyManifest(name, spec));
    assert.notEqual(result.code, 0, `${what} must be refused`);
    assert.match(result.stderr, expected, `${what}: ${result.stderr}`);
  }
  const ok = await dryRun(cp, ns, proxyManifest("a".repeat(63), { tcp: VALID_TCP }));
  assert.equal(ok.code, 0, `a 63-character name is fine: ${ok.stderr}`);
  // The Go operator read 0 as "the default": GitOps re-applies of its objects must pass.
  const zero = { udp: { ...VALID_TCP, readTimeoutSeconds: 0, writeTimeoutSeconds: 0 } };
  const zeroOk = await dryRun(cp, ns, proxyManifest("zero-timeouts", zero));
  assert.equal(zeroOk.code, 0, `timeouts of 0 are accepted: ${zeroOk.stderr}`);
});

integrationTest("targetHost: the API server and parseForwarderSpec agree", async (cp) => {
  const ns = await cp.createNamespace("hosts");
  const hosts = [
    "echo",
    "echo.default.svc.cluster.local",
    "Example.COM.",
    "_sip._udp.example.com",
    "10.0.0.1",
    "255.255.255.255",
    "::1",
    "fd00::1",
    "2001:db8::ffff:192.0.2.1",
    "256.1.1.1",
    "1.2.3",
    "-bad.example",
    "bad-.example",
    "a..b",
    "two words",
    "[::1]",
    "[fd00::1:2]",
    "[::1",
    "::1]",
    "[10.0.0.1]",
    "[localhost]",
    "host:80",
    `${"a".repeat(64)}.example`,
  ];
  const disagreements: string[] = [];
  for (const [i, host] of hosts.entries()) {
    const spec = { tcp: { ...VALID_TCP, targetHost: host } };
    const server = (await dryRun(cp, ns, proxyManifest(`h${i}`, spec))).code === 0;
    const engine = parseForwarderSpec(`${ns}/h${i}`, spec).ok;
    if (server !== engine) disagreements.push(`${host}: API server ${server}, engine ${engine}`);
  }
  assert.deepEqual(disagreements, []);
});

/** Applies `status` to the status subresource as field manager `manager` (server-side apply). */
async function applyStatus(
  cp: ControlPlane,
  ns: string,
  name: string,
  manager: string,
  status: UnDyingProxyStatus,
): Promise<void> {
  const patch = JSON.stringify({
    apiVersion: UNDYING_PROXY_API_VERSION,
    kind: UNDYING_PROXY_KIND,
    metadata: { name },
    status,
  });
  await cp.kubectlOk(
    [
      "apply",
      "--server-side",
      "--subresource=status",
      `--field-manager=${manager}`,
      "-n",
      ns,
      "-f",
      "-",
    ],
    { stdin: patch },
  );
}

integrationTest(
  "status: replicas apply their own entries; kubectl get prints the columns",
  async (cp) => {
    const ns = await cp.createNamespace("status");
    await cp.kubectlOk(["apply", "-n", ns, "-f", `${repoRoot}k8s/samples/game_server.yaml`]);
    const now = new Date().toISOString();
    const listening = { state: "Listening", port: 27015 } as const;
    await applyStatus(cp, ns, "game-server-27015", "undying-proxy/replica-a", {
      replicas: [{ name: "replica-a", lastUpdateTime: now, tcp: listening, udp: listening }],
    });
    await applyStatus(cp, ns, "game-server-27015", "undying-proxy/replica-b", {
      replicas: [{
        name: "replica-b",
        node: "node-2",
        observedGeneration: 1,
        lastUpdateTime: now,
        tcp: listening,
        udp: { state: "Failed", port: 27015, message: "address already in use" },
      }],
    });
    // replica-a writes again: replica-b's entry stays as it was.
    await applyStatus(cp, ns, "game-server-27015", "undying-proxy/replica-a", {
      replicas: [{ name: "replica-a", observedGeneration: 1, lastUpdateTime: now, tcp: listening }],
    });
    let status = (await getProxy(cp, ns, "game-server-27015")).status;
    assert.deepEqual(status?.replicas?.map((r) => [r.name, r.tcp?.state, r.udp?.state]), [
      ["replica-a", "Listening", undefined],
      ["replica-b", "Listening", "Failed"],
    ]);
    await applyStatus(cp, ns, "game-server-27015", "undying-proxy/aggregator", {
      ready: false,
      observedGeneration: 1,
      listening: "1/2",
      target: "game-server-27015.games.svc.cluster.local:27015",
      conditions: [{
        type: "Ready",
        status: "False",
        observedGeneration: 1,
        lastTransitionTime: now.replace(/\.\d+Z$/, "Z"),
        reason: "BindFailed",
        message: "replica-b: UDP 27015: address already in use",
      }],
    });
    const table = await cp.kubectlOk(["get", "undp", "-n", ns]);
    const [header, row] = table.trim().split("\n");
    assert.deepEqual(header?.split(/\s+/), [
      "NAME",
      "READY",
      "TCP",
      "UDP",
      "TARGET",
      "LISTENING",
      "AGE",
    ]);
    assert.match(
      row ?? "",
      /^game-server-27015\s+False\s+27015\s+27015\s+game-server-27015\.games\.svc\.cluster\.local:27015\s+1\/2\s+\d+s/,
    );
    const wide = await cp.kubectlOk(["get", "undp", "-n", ns, "-o", "wide"]);
    assert.match(wide, /REASON\s+MESSAGE/);
    assert.match(wide, /BindFailed\s+replica-b: UDP 27015: address already in use/);

    // A replica that leaves applies an empty status: its entry goes, the others stay.
    await applyStatus(cp, ns, "game-server-27015", "undying-proxy/replica-b", {});
    status = (await getProxy(cp, ns, "game-server-27015")).status;
    assert.deepEqual(status?.replicas?.map((r) => r.name), ["replica-a"]);
    assert.equal(status?.listening, "1/2");

    const bad = await cp.kubectl(
      ["apply", "--server-side", "--subresource=status", "--field-manager=x", "-n", ns, "-f", "-"],
      {
        stdin: JSON.stringify({
          apiVersion: UNDYING_PROXY_API_VERSION,
          kind: UNDYING_PROXY_KIND,
          metadata: { name: "game-server-27015" },
          status: { replicas: [{ name: "r", tcp: { state: "Sleeping" } }] },
        }),
      },
    );
    assert.notEqual(bad.code, 0, "an unknown listen state is refused");
    assert.match(bad.stderr, /status\.replicas\[\d+\]\.tcp\.state.*Unsupported value: "Sleeping"/);
  },
);

/** Server-side dry run of a whole kustomization moved into `ns`; returns kubectl's stderr. */
async function dryRunKustomization(
  cp: ControlPlane,
  path: string,
  ns: string,
  components?: readonly string[],
): Promise<string> {
  const yaml = await renderKustomization(path, {
    namespace: ns,
    ...(components && { components }),
  });
  return await serverDryRun(cp, yaml, path);
}

integrationTest("every kustomization passes a server-side dry run", async (cp) => {
  await installMonitoringCrdStubs(cp);
  // The restricted Pod Security Standard warns about any violation in this namespace.
  const restricted = await cp.createNamespace("default-mode");
  await cp.kubectlOk(["label", "ns", restricted, "pod-security.kubernetes.io/warn=restricted"]);
  const warnings = await dryRunKustomization(cp, "k8s/default", restricted, ["k8s/prometheus"]);
  assert.doesNotMatch(warnings, /PodSecurity/, "the Deployment meets the restricted standard");

  const hostNetwork = await cp.createNamespace("daemonset-mode");
  await cp.kubectlOk(["label", "ns", hostNetwork, "pod-security.kubernetes.io/warn=restricted"]);
  const dsWarnings = await dryRunKustomization(cp, "k8s/daemonset", hostNetwork);
  assert.match(dsWarnings, /would violate PodSecurity "restricted:.*host namespaces/);

  await dryRunKustomization(cp, "k8s/rbac-cluster", await cp.createNamespace("cluster-rbac"));
  await dryRunKustomization(cp, "k8s/samples", await cp.createNamespace("samples-dry"));
});

integrationTest("the metrics-plain component passes a server-side dry run", async (cp) => {
  await installMonitoringCrdStubs(cp);
  const components = ["k8s/prometheus", "k8s/metrics-plain"];
  await dryRunKustomization(
    cp,
    "k8s/default",
    await cp.createNamespace("authed-default"),
    components,
  );
  await dryRunKustomization(cp, "k8s/daemonset", await cp.createNamespace("authed-ds"), components);
});
