/**
 * The Helm chart `charts/undying-proxy/` with a real helm (`tests/tools/helm/`): `helm lint`, and
 * `helm template` for each mode; with the defaults it renders the same objects as the kustomize
 * manifests (drift test); against a real kube-apiserver every rendering passes a server-side dry
 * run, and an installed release works: an operator run with the release's ServiceAccount, flags
 * and Services makes objects Ready and forwards.
 */

import assert from "node:assert/strict";
import { load } from "js-yaml";
import type { DaemonSet, Deployment } from "kubernetes-types/apps/v1.d.ts";
import type { Container, Service } from "kubernetes-types/core/v1.d.ts";
import type { ClusterRoleBinding, RoleBinding } from "kubernetes-types/rbac/v1.d.ts";
import { FLAGS } from "../lib/cli.ts";
import { installMonitoringCrdStubs, serverDryRun } from "./_support/dry_run.ts";
import type { ControlPlane } from "./_support/control_plane.ts";
import {
  chartDir,
  type ChartOptions,
  type Helm,
  helmIntegrationTest,
  helmTest,
} from "./_support/helm.ts";
import {
  findManifest,
  type Manifest,
  parseManifests,
  projectVersion,
  renderKustomization,
  repoRoot,
} from "./_support/kustomize.ts";
import {
  applySample,
  deleteProxy,
  getProxy,
  nextFreePort,
  readyCondition,
  servicePorts,
  tcpEchoes,
  waitForProxy,
  withOperator,
} from "./_support/operator.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import { waitUntil } from "./_support/wait.ts";
import { peerCertificate } from "./_support/peer_certificate.ts";
import { startProgram } from "./_support/program.ts";

/** Renderings every chart test covers: each mode and each optional part. */
const VARIANTS: Record<string, ChartOptions> = {
  "defaults": {},
  "daemonset": { values: { mode: "daemonset" } },
  "namespace list": { values: { watchNamespaces: ["undying-proxy", "games", "db"] } },
  "all namespaces": { values: { watchNamespaces: ["*"] } },
  "monitoring and metrics auth": {
    values: {
      serviceMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" } },
      prometheusRule: { enabled: true },
      grafanaDashboard: { enabled: true, annotations: { grafana_folder: "Networking" } },
      metrics: {
        secure: true,
        authed: true,
        certSecret: "undying-proxy-metrics-tls",
        readers: [{ namespace: "monitoring", name: "prom" }],
      },
    },
  },
  "ingress-nginx ConfigMaps": {
    values: {
      ingressNginx: {
        tcpServicesConfigMap: "ingress-nginx/ingress-nginx-tcp",
        udpServicesConfigMap: "ingress-nginx/ingress-nginx-udp",
      },
    },
  },
  "second instance with its own IP": {
    release: "undying-proxy-eu",
    values: {
      instanceName: "eu",
      replicaCount: 2,
      services: {
        tcp: {
          annotations: { "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*" },
          loadBalancerIP: "203.0.113.10",
        },
        udp: { loadBalancerIP: "203.0.113.10", loadBalancerSourceRanges: ["198.51.100.0/24"] },
      },
      flags: { "udp-max-sessions": 1000000, "dial-timeout": "2s", "log-level": "debug" },
      nodeSelector: { "node-role/edge": "true" },
      tolerations: [{ key: "edge", operator: "Exists", effect: "NoSchedule" }],
      resources: { requests: { cpu: "500m", memory: "128Mi" }, limits: { memory: "1Gi" } },
    },
  },
};

/** Labels only the chart sets (Helm's conventions); the drift test ignores them. */
const HELM_ONLY_LABELS = [
  "app.kubernetes.io/instance",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/version",
  "helm.sh/chart",
];

/**
 * Program flags `flags:` may not name: the chart sets them itself from values, or they make no
 * sense in a cluster (file mode, a kubeconfig).
 */
const FLAGS_NOT_IN_VALUES = [
  // File mode only.
  "config",
  "check-config",
  "config-max-bytes",
  "config-allow-empty",
  "kubeconfig",
  "operator-namespace",
  "tcp-service-to-manage",
  "udp-service-to-manage",
  "metrics-bind-address",
  "health-probe-bind-address",
  "watch-namespaces",
  "instance-name",
  "metrics-secure",
  "metrics-authed",
  "metrics-cert-path",
  "tcp-services-configmap",
  "udp-services-configmap",
];

/** An object without Helm's own labels and with container args sorted, for comparison. */
function comparable(object: Manifest): unknown {
  const strip = (value: unknown, key?: string): unknown => {
    if (Array.isArray(value)) {
      const items = value.map((item) => strip(item));
      return key === "args" ? items.toSorted() : items;
    }
    if (value === null || typeof value !== "object") return value;
    const entries = Object.entries(value).map(([k, v]) => [k, strip(v, k)] as const);
    const out = Object.fromEntries(entries) as Record<string, unknown>;
    const labels = out["labels"];
    if (key === "metadata" && labels && typeof labels === "object") {
      const kept = Object.entries(labels).filter(([name]) => !HELM_ONLY_LABELS.includes(name));
      if (kept.length === 0) delete out["labels"];
      else out["labels"] = Object.fromEntries(kept);
    }
    return out;
  };
  return strip(object);
}

/** Objects by `Kind/namespace/name`, comparable. */
function byIdentity(objects: readonly Manifest[]): Map<string, unknown> {
  return new Map(
    objects.map((
      o,
    ) => [`${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`, comparable(o)]),
  );
}

function workloadContainer(objects: readonly Manifest[], release = "undying-proxy"): Container {
  const workload = objects.find((o) =>
    ["Deployment", "DaemonSet"].includes(o.kind) && o.metadata.name === release
  ) as Deployment | DaemonSet | undefined;
  const container = workload?.spec?.template.spec?.containers[0];
  assert.ok(container, `a workload named ${release} with a container`);
  return container;
}

function flagValue(container: Container, flag: string): string | undefined {
  return container.args?.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

helmTest(
  "helm lint --strict passes with the defaults and every variant; helm package holds the files",
  async (helm) => {
    for (const [name, options] of Object.entries(VARIANTS)) {
      // `helm lint` takes the chart, the namespace and the values, but no release name.
      const result = await helm.run(["lint", "--strict", ...helm.chartArgs(options).slice(1)]);
      assert.equal(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
    const dir = await Deno.makeTempDir({ prefix: "undying-proxy-package-" });
    try {
      await helm.runOk(["package", chartDir, "--destination", dir]);
      const packaged = `${dir}/undying-proxy-${await projectVersion()}.tgz`;
      const listing = await new Deno.Command("tar", { args: ["-tzf", packaged], stdout: "piped" })
        .output();
      const files = new TextDecoder().decode(listing.stdout).split("\n");
      for (
        const file of [
          "crds/proxy.sfact.io_undyingproxies.yaml",
          "files/prometheus-rules.yaml",
          "files/grafana-dashboard.json",
          "values.schema.json",
        ]
      ) assert.ok(files.includes(`undying-proxy/${file}`), `the package holds ${file}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

// When k8s/ changes, change the chart to match: templates/ for the shape, values.yaml for the
// defaults (placeholder ports, flags), templates/_helpers.tpl for the program's metrics defaults.
helmTest(
  "with the defaults the chart renders the objects of kustomize's k8s/default",
  async (helm) => {
    const kustomize = parseManifests(await renderKustomization("k8s/default"));
    const chart = parseManifests(await helm.template());
    // The Namespace stays kustomize's: Helm installs into a namespace (--create-namespace).
    const expected = byIdentity(
      kustomize.filter((o) => !["Namespace", "CustomResourceDefinition"].includes(o.kind)),
    );
    assert.deepEqual(byIdentity(chart), expected);
  },
);

helmTest(
  "chart and kustomize agree for the daemonset mode, the monitoring parts and all namespaces",
  async (helm) => {
    const pairs: [string, Promise<string>, ChartOptions, (o: Manifest) => boolean][] = [
      [
        "k8s/daemonset",
        renderKustomization("k8s/daemonset"),
        VARIANTS["daemonset"] ?? {},
        () => true,
      ],
      [
        "k8s/default with k8s/prometheus",
        renderKustomization("k8s/default", { components: ["k8s/prometheus"] }),
        { values: { serviceMonitor: { enabled: true } } },
        () => true,
      ],
      [
        "k8s/default with k8s/prometheus and k8s/metrics-plain",
        renderKustomization("k8s/default", {
          components: ["k8s/prometheus", "k8s/metrics-plain"],
        }),
        {
          values: { serviceMonitor: { enabled: true }, metrics: { secure: false, authed: false } },
        },
        // Without token review the chart leaves out the review RBAC; kustomize keeps it.
        (o) => !/-metrics-(auth|reader)$/.test(o.metadata.name),
      ],
      [
        "k8s/rbac-cluster",
        renderKustomization("k8s/rbac-cluster"),
        VARIANTS["all namespaces"] ?? {},
        (o) => /^(ServiceAccount|Role|RoleBinding|ClusterRole|ClusterRoleBinding)$/.test(o.kind),
      ],
    ];
    for (const [what, rendered, options, compared] of pairs) {
      const kustomize = parseManifests(await rendered).filter((o) =>
        !["Namespace", "CustomResourceDefinition"].includes(o.kind) && compared(o)
      );
      const chart = parseManifests(await helm.template(options)).filter(compared);
      assert.deepEqual(byIdentity(chart), byIdentity(kustomize), what);
    }
  },
);

helmTest("the chart ships k8s/crd's CRD and deno.json's version", async (helm) => {
  // crds/ links to k8s/crd/ (helm follows the link, `helm package` copies the file).
  const crd = "proxy.sfact.io_undyingproxies.yaml";
  assert.equal(
    await Deno.realPath(`${chartDir}/crds/${crd}`),
    await Deno.realPath(`${repoRoot}k8s/crd/${crd}`),
  );
  const withCrds = parseManifests(await helm.template({ includeCrds: true }));
  const shipped = parseManifests(await Deno.readTextFile(`${repoRoot}k8s/crd/${crd}`));
  assert.deepEqual(
    findManifest(withCrds, "CustomResourceDefinition", "undyingproxies.proxy.sfact.io"),
    shipped[0],
  );
  const chart = load(await Deno.readTextFile(`${chartDir}/Chart.yaml`)) as Record<string, string>;
  const version = await projectVersion();
  assert.equal(chart["version"], version);
  assert.equal(chart["appVersion"], version);
  const container = workloadContainer(parseManifests(await helm.template()));
  assert.equal(container.image, `ghcr.io/sfact/undying-proxy:${version}`);
});

helmTest(
  "values.schema.json lets flags: name exactly the program flags the chart leaves open",
  async (helm) => {
    const schema = JSON.parse(await Deno.readTextFile(`${chartDir}/values.schema.json`));
    const allowed: string[] = schema.properties.flags.propertyNames.enum;
    const expected = Object.keys(FLAGS).filter((name) => !FLAGS_NOT_IN_VALUES.includes(name));
    assert.deepEqual(allowed.toSorted(), expected.toSorted());
    for (const name of FLAGS_NOT_IN_VALUES) {
      assert.ok(name in FLAGS, `${name} is a program flag`);
    }
    const typo = await helm.run([
      "template",
      ...helm.chartArgs({ values: { flags: { "dial-timout": "1s" } } }),
    ]);
    assert.notEqual(typo.code, 0, "a misspelt flag is refused");
    assert.match(typo.stderr, /invalid propertyName 'dial-timout'/);
    const mode = await helm.run(["template", ...helm.chartArgs({ values: { mode: "sidecar" } })]);
    assert.notEqual(mode.code, 0);
    assert.match(mode.stderr, /\/mode.*must be one of 'deployment', 'daemonset'/);
  },
);

helmTest("helm template renders what each mode promises", async (helm) => {
  const render = async (name: string) => {
    const options = VARIANTS[name];
    assert.ok(options, name);
    return parseManifests(await helm.template(options));
  };

  const daemonset = await render("daemonset");
  assert.ok(!daemonset.some((o) => ["Deployment", "PodDisruptionBudget"].includes(o.kind)));
  assert.ok(!daemonset.some((o) => (o as unknown as Service).spec?.type === "LoadBalancer"));
  const ds = findManifest<DaemonSet>(daemonset, "DaemonSet", "undying-proxy");
  assert.equal(ds.spec?.template.spec?.hostNetwork, true);
  assert.deepEqual(ds.spec?.template.spec?.nodeSelector, { "undying-proxy/public-ip": "true" });
  assert.equal(flagValue(workloadContainer(daemonset), "--tcp-service-to-manage"), "");

  const list = await render("namespace list");
  assert.equal(
    flagValue(workloadContainer(list), "--watch-namespaces"),
    "undying-proxy,games,db",
  );
  const bindings = list.filter((o) => o.kind === "RoleBinding") as unknown as RoleBinding[];
  assert.deepEqual(
    bindings.map((b) => [b.metadata?.namespace, b.roleRef.kind]),
    [["undying-proxy", "Role"], ["games", "ClusterRole"], ["db", "ClusterRole"]],
  );
  assert.ok(
    !list.some((o) =>
      o.kind === "ClusterRoleBinding" &&
      (o as unknown as ClusterRoleBinding).roleRef.name === "undying-proxy"
    ),
    "no cluster-wide binding for the objects",
  );

  const all = await render("all namespaces");
  assert.equal(flagValue(workloadContainer(all), "--watch-namespaces"), "*");
  const clusterBinding = findManifest<ClusterRoleBinding>(
    all,
    "ClusterRoleBinding",
    "undying-proxy",
  );
  assert.deepEqual(clusterBinding.subjects, [
    { kind: "ServiceAccount", name: "undying-proxy", namespace: "undying-proxy" },
  ]);

  const nginx = await render("ingress-nginx ConfigMaps");
  const nginxArgs = workloadContainer(nginx);
  assert.equal(flagValue(nginxArgs, "--tcp-services-configmap"), "ingress-nginx/ingress-nginx-tcp");
  assert.equal(flagValue(nginxArgs, "--udp-services-configmap"), "ingress-nginx/ingress-nginx-udp");
  // The rights of k8s/ingress-nginx, narrowed to the two ConfigMaps named.
  const kustomized = parseManifests(await renderKustomization("k8s/ingress-nginx"));
  for (const kind of ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]) {
    const chartObject = nginx.find((o) =>
      o.kind === kind && /-(stream-services|service-reader)$/.test(o.metadata.name)
    ) as Manifest & { rules?: { resourceNames?: string[] }[] } | undefined;
    const kustomizeObject = kustomized.find((o) => o.kind === kind) as typeof chartObject;
    assert.ok(chartObject && kustomizeObject, kind);
    for (const rule of kustomizeObject.rules ?? []) {
      if (rule.resourceNames) rule.resourceNames = ["ingress-nginx-tcp", "ingress-nginx-udp"];
    }
    assert.deepEqual(comparable(chartObject), comparable(kustomizeObject), kind);
  }

  const eu = await render("second instance with its own IP");
  const container = workloadContainer(eu, "undying-proxy-eu");
  assert.equal(flagValue(container, "--instance-name"), "eu");
  assert.equal(flagValue(container, "--tcp-service-to-manage"), "undying-proxy-eu-tcp");
  assert.equal(flagValue(container, "--udp-max-sessions"), "1000000", "no 1e+06");
  assert.equal(flagValue(container, "--dial-timeout"), "2s");
  assert.equal(container.resources?.requests?.["cpu"], "500m");
  const deployment = findManifest<Deployment>(eu, "Deployment", "undying-proxy-eu");
  assert.equal(deployment.spec?.replicas, 2);
  assert.deepEqual(deployment.spec?.selector.matchLabels, { app: "undying-proxy-eu" });
  assert.deepEqual(deployment.spec?.template.spec?.nodeSelector, { "node-role/edge": "true" });
  const tcp = findManifest<Service>(eu, "Service", "undying-proxy-eu-tcp");
  assert.equal(
    tcp.metadata?.annotations?.["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"],
    "*",
  );
  assert.equal(tcp.spec?.loadBalancerIP, "203.0.113.10");
  assert.deepEqual(tcp.spec?.selector, { app: "undying-proxy-eu" });
  const udp = findManifest<Service>(eu, "Service", "undying-proxy-eu-udp");
  assert.deepEqual(udp.spec?.loadBalancerSourceRanges, ["198.51.100.0/24"]);
  assert.ok(
    eu.every((o) => o.metadata.name.startsWith("undying-proxy-eu")),
    "every object of the second release has its own name",
  );
});

// ---- against the real API server ----

helmIntegrationTest(
  "every rendering of the chart passes a server-side dry run",
  async (helm, cp) => {
    await installMonitoringCrdStubs(cp);
    for (const [name, options] of Object.entries(VARIANTS)) {
      const ns = await cp.createNamespace("chart");
      // The restricted Pod Security Standard warns about any violation in this namespace.
      await cp.kubectlOk(["label", "ns", ns, "pod-security.kubernetes.io/warn=restricted"]);
      const watched = (options.values?.["watchNamespaces"] ?? []) as string[];
      const streamServices = Object.values(options.values?.["ingressNginx"] ?? {}) as string[];
      const configMapNamespaces = streamServices.map((ref) => ref.split("/")[0] ?? "");
      for (const other of [...watched, ...configMapNamespaces].filter((n) => n !== "*")) {
        await cp.kubectl(["create", "namespace", other]);
      }
      const yaml = await helm.template({ ...options, namespace: ns, includeCrds: true });
      const warnings = await serverDryRun(cp, yaml, `chart ${name}`);
      if (name === "daemonset") {
        assert.match(warnings, /would violate PodSecurity "restricted:.*host namespaces/);
      } else {
        assert.doesNotMatch(warnings, /PodSecurity/, `${name} meets the restricted standard`);
      }
    }
  },
);

/** `helm install` into `ns`; returns the release's objects (`helm get manifest`). */
async function install(
  helm: Helm,
  cp: ControlPlane,
  options: ChartOptions & { namespace: string },
): Promise<{ objects: Manifest[]; notes: string }> {
  const release = options.release ?? "undying-proxy";
  const installed = await helm.run(
    ["install", ...helm.chartArgs(options), "--wait=false"],
    cp.adminKubeconfigPath,
  );
  assert.equal(installed.code, 0, installed.stderr);
  const status = JSON.parse(
    await helm.runOk(
      ["status", release, "-n", options.namespace, "-o", "json"],
      cp.adminKubeconfigPath,
    ),
  );
  assert.equal(status.info.status, "deployed");
  const manifest = await helm.runOk(
    ["get", "manifest", release, "-n", options.namespace],
    cp.adminKubeconfigPath,
  );
  return { objects: parseManifests(manifest), notes: installed.stdout };
}

/**
 * The release's workload args as a local operator takes them: no kubelet runs the pods here, so
 * the test runs them, minus the namespace and bind addresses the harness sets itself.
 */
function localArgs(objects: readonly Manifest[], release = "undying-proxy"): string[] {
  return (workloadContainer(objects, release).args ?? []).filter((arg) =>
    !/^--(operator-namespace|metrics-bind-address|health-probe-bind-address)=/.test(arg)
  );
}

/** Waits until the object's Ready condition is True and one replica of one listens. */
async function waitListening(cp: ControlPlane, namespace: string, name: string): Promise<void> {
  const ready = await waitForProxy(
    cp,
    namespace,
    name,
    `${namespace}/${name} Ready`,
    (o) => readyCondition(o)?.status === "True",
  );
  assert.equal(ready.status?.listening, "1/1");
}

helmIntegrationTest(
  "an installed release works: an operator with its ServiceAccount, flags and Services makes objects Ready",
  async (helm, cp) => {
    const ns = await cp.createNamespace("release");
    const games = await cp.createNamespace("release-games");
    const { objects, notes } = await install(helm, cp, {
      namespace: ns,
      values: { watchNamespaces: [ns, games] },
    });
    assert.match(notes, /Forward a port: create an UnDyingProxy object, e\.g\./, "NOTES");
    assert.match(notes, new RegExp(`get svc -n ${ns} undying-proxy-tcp undying-proxy-udp`));
    assert.match(notes, /bind ClusterRole undying-proxy-metrics-reader/);
    const args = localArgs(objects);
    assert.deepEqual(args, [
      "--tcp-service-to-manage=undying-proxy-tcp",
      "--udp-service-to-manage=undying-proxy-udp",
      `--watch-namespaces=${ns},${games}`,
      "--tcp-engine=auto",
      "--udp-engine=auto",
      "--zap-devel=false",
    ]);
    const placeholders = findManifest<Service>(objects, "Service", "undying-proxy-tcp").spec?.ports
      ?.map((p) => p.port) ?? [];
    // Only the rights the release's RBAC gives its ServiceAccount.
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "undying-proxy");
    await using echo = startTcpEcho();
    const [ownPort, gamesPort] = [nextFreePort(), nextFreePort()];
    await withOperator({ kubeconfig, namespace: ns, replica: "pod-1", args }, async (operator) => {
      await applySample(cp, ns, "tcp.yaml", {
        name: "own",
        tcp: { listenPort: ownPort, targetPort: echo.port },
      });
      await applySample(cp, games, "tcp.yaml", {
        name: "game",
        tcp: { listenPort: gamesPort, targetPort: echo.port },
      });
      await waitListening(cp, ns, "own");
      await waitListening(cp, games, "game");
      assert.ok(await tcpEchoes(operator.listenAddress, ownPort));
      assert.ok(await tcpEchoes(operator.listenAddress, gamesPort));
      const ports = (await servicePorts(cp, ns, "undying-proxy-tcp")).map((p) => p.port);
      const byNumber = (a: number, b: number) => a - b;
      assert.deepEqual(ports.sort(byNumber), [...placeholders, ownPort, gamesPort].sort(byNumber));
      // Objects go while the operator runs (it removes their finalizers).
      await deleteProxy(cp, ns, "own");
      await deleteProxy(cp, games, "game");
    });

    await helm.runOk(["uninstall", "undying-proxy", "-n", ns, "--wait"], cp.adminKubeconfigPath);
    const left = await cp.kubectlOk([
      "get",
      "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget",
      "-n",
      ns,
      "-o",
      "name",
    ]);
    assert.deepEqual(
      left.trim().split("\n").filter((line) =>
        line !== "" && !/serviceaccount\/default$/.test(line)
      ),
      [],
      "uninstall removes the release's objects",
    );
    await cp.kubectlOk(["get", "crd", "undyingproxies.proxy.sfact.io"]);
  },
);

helmIntegrationTest(
  "a daemonset release of one instance: its operator manages no Service and serves its objects only",
  async (helm, cp) => {
    const ns = await cp.createNamespace("release-ds");
    const { objects } = await install(helm, cp, {
      namespace: ns,
      release: "edge",
      values: { mode: "daemonset", instanceName: "edge" },
    });
    assert.ok(
      !objects.some((o) =>
        o.kind === "Service" && o.metadata.name !== "edge-undying-proxy-metrics"
      ),
    );
    const args = localArgs(objects, "edge-undying-proxy");
    assert.deepEqual(args, [
      "--tcp-service-to-manage=",
      "--udp-service-to-manage=",
      "--instance-name=edge",
      "--tcp-engine=auto",
      "--udp-engine=auto",
      "--zap-devel=false",
    ]);
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "edge-undying-proxy");
    await using echo = startTcpEcho();
    const [edgePort, otherPort] = [nextFreePort(), nextFreePort()];
    await withOperator({ kubeconfig, namespace: ns, replica: "node-1", args }, async (operator) => {
      // Applied first: once edge is Ready, the operator has seen other too.
      await applySample(cp, ns, "tcp.yaml", {
        name: "other",
        tcp: { listenPort: otherPort, targetPort: echo.port },
      });
      await applySample(cp, ns, "tcp.yaml", {
        name: "edge",
        tcp: { listenPort: edgePort, targetPort: echo.port },
        annotations: { "proxy.sfact.io/instance": "edge" },
      });
      await waitListening(cp, ns, "edge");
      assert.ok(await tcpEchoes(operator.listenAddress, edgePort));
      assert.ok(!(await tcpEchoes(operator.listenAddress, otherPort)), "not this instance's");
      const other = await getProxy(cp, ns, "other");
      assert.equal(other?.metadata.finalizers, undefined, "no finalizer on another instance's");
      await deleteProxy(cp, ns, "edge");
      await cp.kubectlOk(["delete", "undyingproxy", "other", "-n", ns]);
    });
  },
);

helmIntegrationTest(
  "by default a release serves metrics over HTTPS with token review; metrics.readers lets a scraper in",
  async (helm, cp) => {
    const ns = await cp.createNamespace("release-metrics");
    // Cluster-scoped objects carry the release's name: one name per cluster.
    const { objects } = await install(helm, cp, {
      namespace: ns,
      release: "metrics",
      values: { metrics: { readers: [{ namespace: ns, name: "prometheus" }] } },
    });
    const args = localArgs(objects, "metrics-undying-proxy");
    assert.ok(!args.some((arg) => /^--metrics-(secure|authed)/.test(arg)), "the program's default");
    const token = async (name: string) => {
      await cp.kubectl(["create", "serviceaccount", name, "-n", ns]);
      return (await cp.kubectlOk(["create", "token", name, "-n", ns])).trim();
    };
    const [reader, stranger] = [await token("prometheus"), await token("stranger")];
    // Only the rights of the release's RBAC (the TokenReview and SubjectAccessReview included).
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "metrics-undying-proxy");
    await using program = await startProgram(
      [`--operator-namespace=${ns}`, `--kubeconfig=${kubeconfig}`, ...args],
      { metricsDefaults: true },
    );
    using client = Deno.createHttpClient({
      caCerts: [await peerCertificate(program.metricsPort)],
    });
    const scrape = async (bearer: string) => {
      const response = await fetch(`https://127.0.0.1:${program.metricsPort}/metrics`, {
        client,
        headers: { authorization: `Bearer ${bearer}` },
      });
      await response.body?.cancel();
      return response.status;
    };
    let status = 0;
    await waitUntil(
      "the reader's scrape to succeed",
      async () => (status = await scrape(reader)) === 200,
      { timeoutMs: 30_000, intervalMs: 500 },
    ).catch((error) => {
      throw new Error(`${error}; last status ${status}\n${program.output().slice(-4000)}`);
    });
    assert.equal(await scrape(stranger), 403);
  },
);
