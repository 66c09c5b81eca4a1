/**
 * Operator mode's metrics defaults (`--metrics-secure --metrics-authed`, as in the Go operator)
 * against a real kube-apiserver: the program runs in operator mode under the shipped RBAC
 * (`k8s/rbac`, which includes the review rights) with no metrics flag and answers
 * scrapes over HTTPS with its self-signed certificate: 401 without a valid token, 403 for an
 * identity without the reader ClusterRole, 200 with it. The authorizer is also checked in process
 * (cache expiry on a moved clock, an operator identity without review rights).
 */
import assert from "node:assert/strict";
import { KubeClient } from "../lib/kube/client.ts";
import { loadClusterConfig } from "../lib/kube/cluster_config.ts";
import { MetricsAuthorizer } from "../lib/metrics_auth.ts";
import { type ControlPlane, integrationTest } from "./_support/control_plane.ts";
import { renderKustomization, repoRoot } from "./_support/kustomize.ts";
import { waitUntil } from "./_support/wait.ts";
import { peerCertificate } from "./_support/peer_certificate.ts";
import { startProgram } from "./_support/program.ts";

const WAIT_MS = 30_000;
const READER_ROLE = "undying-proxy-metrics-reader";

/**
 * A namespace with the operator's ServiceAccount under the shipped RBAC, and a ServiceAccount
 * `scraper` bound (ClusterRoleBinding `binding`) to the reader role.
 */
async function operatorAndScraper(cp: ControlPlane, prefix: string) {
  const ns = await cp.createNamespace(prefix);
  const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "undying-proxy");
  const rendered = await renderKustomization("k8s/rbac", { namespace: ns });
  await cp.kubectlOk(["apply", "-f", "-"], { stdin: rendered });
  const reader = await serviceAccountToken(cp, ns, "scraper");
  const binding = `${ns}-scraper`;
  await bindReader(cp, binding, `--serviceaccount=${ns}:scraper`);
  return { ns, kubeconfig, reader, binding };
}

/** Creates a ServiceAccount and returns a token of it. */
async function serviceAccountToken(cp: ControlPlane, namespace: string, name: string) {
  await cp.kubectlOk(["create", "serviceaccount", name, "-n", namespace]);
  return (await cp.kubectlOk(["create", "token", name, "-n", namespace])).trim();
}

/** Binds the shipped reader ClusterRole to `subject` (`--serviceaccount=ns:name` or `--group=g`). */
async function bindReader(cp: ControlPlane, name: string, subject: string): Promise<void> {
  await cp.kubectlOk([
    "create",
    "clusterrolebinding",
    name,
    `--clusterrole=${READER_ROLE}`,
    subject,
  ]);
}

/** A `Request` for /metrics carrying `token` (or a whole Authorization header), in process. */
function scrapeRequest(token?: string, authorization = `Bearer ${token}`): Request {
  const headers: Record<string, string> = token ? { authorization } : {};
  return new Request("https://127.0.0.1/metrics", { headers });
}

integrationTest(
  "operator mode by default (--metrics-secure --metrics-authed): 401 without a valid token, 403 without the reader role, 200 with it",
  async (cp) => {
    const { ns, kubeconfig, reader } = await operatorAndScraper(cp, "metrics-auth");
    const stranger = await serviceAccountToken(cp, ns, "stranger");
    // A role bound to a group works through the groups the TokenReview reports.
    const groupNs = await cp.createNamespace("metrics-group");
    const member = await serviceAccountToken(cp, groupNs, "member");
    await bindReader(cp, `${groupNs}-group`, `--group=system:serviceaccounts:${groupNs}`);

    await using program = await startProgram([
      `--operator-namespace=${ns}`,
      `--kubeconfig=${kubeconfig}`,
      "--tcp-service-to-manage=",
      "--udp-service-to-manage=",
    ], { metricsDefaults: true });
    using client = Deno.createHttpClient({
      caCerts: [await peerCertificate(program.metricsPort)],
    });
    const scrape = async (token?: string, path = "/metrics") => {
      const response = await fetch(`https://127.0.0.1:${program.metricsPort}${path}`, {
        client,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
      return { status: response.status, body: await response.text() };
    };
    const failure = (what: string) => `${what}\n--- program output ---\n${program.output()}`;

    const anonymous = await scrape();
    assert.equal(anonymous.status, 401, failure("no token"));
    assert.match(anonymous.body, /no bearer token/);
    const forged = await scrape("not-a-token");
    assert.equal(forged.status, 401, failure("a forged token"));
    assert.match(forged.body, /not valid/);

    const refused = await scrape(stranger);
    assert.equal(refused.status, 403, failure("a token without the reader role"));
    assert.match(refused.body, new RegExp(`"system:serviceaccount:${ns}:stranger" may not get`));
    assert.doesNotMatch(refused.body, /undying_proxy_/);

    for (const [what, token] of [["the reader", reader], ["a group member", member]] as const) {
      let last = { status: 0, body: "" };
      // RBAC reaches the API server's authorizer shortly after the binding is created.
      await waitUntil(
        `${what}'s scrape to succeed`,
        async () => (last = await scrape(token)).status === 200,
        { timeoutMs: WAIT_MS, intervalMs: 500 },
      ).catch((error) => {
        throw new Error(failure(`${error}; last answer ${last.status} ${last.body}`));
      });
      assert.match(last.body, /^undying_proxy_build_info\{version="[^"]+"\} 1$/m);
      assert.match(last.body, /^# TYPE undying_proxy_operator_errors_total counter$/m);
    }
    // The reader role covers /metrics only.
    assert.equal((await scrape(reader, "/other")).status, 403);
  },
);

integrationTest(
  "the authorizer re-asks the API server once a cached decision expires",
  async (cp) => {
    const { kubeconfig, reader: token, binding } = await operatorAndScraper(cp, "metrics-cache");
    let now = 0;
    using authorizer = new MetricsAuthorizer(
      new KubeClient(await loadClusterConfig({ kubeconfig })),
      { allowTtlMs: 60_000, denyTtlMs: 10_000, now: () => now },
    );
    await waitUntil("the reader to be allowed", async () => {
      now += 11_000; // past the deny TTL: a refusal before RBAC caught up is not reused
      return (await authorizer.check(scrapeRequest(token))) === undefined;
    }, { timeoutMs: WAIT_MS, intervalMs: 500 });
    // The scheme is case-insensitive; other schemes and an empty token carry no bearer token.
    assert.equal(await authorizer.check(scrapeRequest(token, `bearer  ${token} `)), undefined);
    for (const header of [`Basic ${token}`, "Bearer", "Bearer ", `Bearer ${token} x`]) {
      const answer = await authorizer.check(scrapeRequest(token, header));
      assert.equal(answer?.status, 401, header);
    }
    await cp.kubectlOk(["delete", "clusterrolebinding", binding]);
    // Within the allow TTL the cached decision stands, whatever the cluster says now.
    now += 59_000;
    assert.equal(await authorizer.check(scrapeRequest(token)), undefined);
    // Once it expires, the API server is asked again and refuses.
    now += 2_000;
    await waitUntil("the unbound reader to be refused", async () => {
      now += 11_000; // past the deny TTL: every poll asks the API server
      return (await authorizer.check(scrapeRequest(token)))?.status === 403;
    }, { timeoutMs: WAIT_MS, intervalMs: 500 });
    assert.equal((await authorizer.check(scrapeRequest()))?.status, 401);
  },
);

integrationTest(
  "without the metrics-auth ClusterRole the operator cannot check tokens: 500, not an open door",
  async (cp) => {
    const ns = await cp.createNamespace("metrics-norbac");
    // Only the namespaced Role of k8s/rbac: no TokenReview or SubjectAccessReview rights.
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "undying-proxy");
    const namespaced = ["service_account", "role", "role_binding"]
      .flatMap((name) => ["-f", `${repoRoot}k8s/rbac/${name}.yaml`]);
    await cp.kubectlOk(["apply", "-n", ns, ...namespaced]);
    const token = await serviceAccountToken(cp, ns, "scraper");
    using authorizer = new MetricsAuthorizer(
      new KubeClient(await loadClusterConfig({ kubeconfig }), { maxAttempts: 1 }),
    );
    const answer = await authorizer.check(scrapeRequest(token));
    assert.ok(answer, "refused");
    assert.equal(answer.status, 500);
    assert.doesNotMatch(await answer.text(), /forbidden|tokenreviews/i, "no details to scrapers");
  },
);
