/**
 * The Kubernetes source of desired state: the operator's reconcile loop.
 *
 * Level-based: reflectors keep stores of the UnDyingProxy objects (operator namespace, a list of
 * namespaces, or all) and of the managed Services; any change, a supervisor state change or the
 * periodic resync wakes ONE loop that runs a full pass over every object of this instance:
 * 1. build the complete desired set and hand it to the supervisor (so after a restart, a missed
 *    event or a watch gap every replica converges; an object gone unseen stops listening); the
 *    set is oldest first and the supervisor gives a contested port to the first in it, so the
 *    oldest wins on every replica alike;
 * 2. Events and error counts for listener transitions and invalid specs;
 * 3. add the finalizer to objects that lack it;
 * 4. sync the managed Services' ports;
 * 5. write this replica's status entry when it changed or its heartbeat is due (the aggregator
 *    also writes the summary fields), and remove entries of replicas that stopped reporting;
 * 6. release (remove the finalizer from) deleted objects once this replica stopped listening, the
 *    Service ports are gone (or cannot be removed: reported, never blocking) and no other fresh
 *    replica reports listening (bounded by the stale threshold).
 * Every step is idempotent; a failed step is counted, logged and retried with backoff by the next
 * pass. The first pass runs only once every object reflector has listed, so readiness follows the
 * first full list. At shutdown the replica takes its entries out and writes the summary of the
 * entries left (`planWithdrawal`), so the last replica to stop leaves Ready False.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  UNDYING_PROXY_GROUP,
  UNDYING_PROXY_KIND,
  UNDYING_PROXY_PLURAL,
  UNDYING_PROXY_VERSION,
  type UnDyingProxy,
} from "../../k8s/undying_proxy_types.ts";
import type { ForwarderStatus } from "../forward/state.ts";
import { describeProblems, type ForwarderSpec, type SpecProblem } from "../spec.ts";
import type { DesiredStateSource } from "../source.ts";
import { abortableDelay, sleep } from "../util/abortable_delay.ts";
import { Backoff } from "../util/backoff.ts";
import { forEachLimit, Wake } from "./_wake.ts";
import type { KubeClient } from "../kube/client.ts";
import {
  desiredFromProxies,
  forwarderName,
  isDeleting,
  selectProxies,
} from "./desired_from_proxies.ts";
import { type EventDeduperOptions, type EventNote, EventRecorder } from "./events.ts";
import { addFinalizer, hasFinalizer, removeFinalizer } from "./finalizer.ts";
import { listenerTransitions } from "./listener_events.ts";
import { type LoopObserver, NO_OBSERVER } from "./loop_observer.ts";
import type { CountOperatorError, OperatorErrorType } from "./operator_errors.ts";
import {
  describeRejected,
  type RejectedEntry,
  type StreamServicesSource,
} from "./stream_services_source.ts";
import { defineResource, type Resource, SERVICES } from "../kube/resources.ts";
import { servicePortName } from "./service_port_plan.ts";
import { type ManagedService, managedServices, syncServicePorts } from "./service_ports.ts";
import { othersListening, planStatus, planWithdrawal } from "./status_plan.ts";
import { applyReplicaStatus, removeReplicaEntries, withdrawReplica } from "./status_writer.ts";
import { Reflector, type ReflectorOptions } from "../kube/reflector.ts";
import type { ConfigMap, Service } from "kubernetes-types/core/v1.d.ts";
import { errorMessage } from "../util/error_message.ts";

const logger = getLogger(["undying-proxy", "operator"]);

/** Longest wait of a pass for binds in engine threads before it reports what it sees. */
const BIND_SETTLE_MS = 2000;

/** `proxy.sfact.io/v1alpha1` UnDyingProxies, typed with the generated type. */
export const PROXIES: Resource<UnDyingProxy> = defineResource<UnDyingProxy>({
  group: UNDYING_PROXY_GROUP,
  version: UNDYING_PROXY_VERSION,
  plural: UNDYING_PROXY_PLURAL,
  kind: UNDYING_PROXY_KIND,
  namespaced: true,
});

/** What the operator reads from the supervisor. */
export interface SupervisorView {
  /** Current state of every forwarder in the desired set. */
  statuses(): ForwarderStatus[];
  /** Called with a forwarder name whenever its status changes. Returns unsubscribe. */
  onChange(listener: (name: string) => void): () => void;
  /** Resolves once binds in progress (in engine threads) have succeeded or failed. */
  settled?(): Promise<void>;
}

/** Options of {@linkcode Operator}. */
export interface OperatorOptions {
  client: KubeClient;
  /** Namespace of the operator and of the managed Services (`--operator-namespace`). */
  operatorNamespace: string;
  /** Namespaces watched for objects: "*" for all, empty for the operator namespace. @default [] */
  watchNamespaces?: "*" | readonly string[];
  /** Handle only objects selecting this instance (`--instance-name`). @default "" */
  instanceName?: string;
  /** This replica's name in status entries, Events and field managers. */
  replica: string;
  /** The node this replica runs on, shown in its status entries. */
  node?: string;
  /** Service carrying the TCP ports; "" disables. @default "" */
  tcpService?: string;
  /** Service carrying the UDP ports; "" disables. @default "" */
  udpService?: string;
  /** The supervisor's statuses and change notifications. */
  view: SupervisorView;
  /** Advances `undying_proxy_operator_errors_total{type}`. */
  countError?: CountOperatorError;
  /** Queue and pass events, for the controller-runtime style metrics. */
  observer?: LoopObserver;
  /** A replica rewrites its unchanged status entry this often. @default 60000 */
  heartbeatMs?: number;
  /** Entries older than this are ignored and removed. @default 3 × heartbeatMs */
  staleAfterMs?: number;
  /** Full pass at least this often. @default 30000 */
  resyncMs?: number;
  /** Bursts of changes are merged: passes start at least this far apart. @default 200 */
  minPassIntervalMs?: number;
  /** Reflector tuning (tests shorten the watch timeout). */
  reflector?: Pick<ReflectorOptions, "watchTimeoutSeconds" | "livenessMarginMs" | "backoff">;
  /** Event deduplication and rate limit. */
  events?: EventDeduperOptions;
  /**
   * `--allowed-target-namespaces`: objects may only target Services of their own namespace or of
   * these ("*" = any). @default undefined (no restriction)
   */
  allowedTargetNamespaces?: "*" | readonly string[] | undefined;
  /** ingress-nginx tcp/udp-services ConfigMaps, forwarded after the objects (objects win ports). */
  streamServices?: StreamServicesSource;
}

/** The outcome of one Service sync, as the rest of the pass needs it. */
interface ServiceOutcome {
  /** Why an object has no port, by forwarder name. */
  readonly problems: Map<string, string>;
  /** True when every managed Service was synced. */
  readonly allSynced: boolean;
}

/** What one pass knows, as the steps after the apply need it. */
interface PassState {
  /** Valid specs by forwarder name. */
  readonly specs: ReadonlyMap<string, ForwarderSpec>;
  /** Problems of invalid specs by forwarder name. */
  readonly invalid: ReadonlyMap<string, readonly SpecProblem[]>;
  /** The supervisor's statuses right after the apply, by forwarder name. */
  readonly statuses: ReadonlyMap<string, ForwarderStatus>;
  readonly services: ServiceOutcome;
  readonly now: Date;
  readonly signal: AbortSignal;
}

/** The UnDyingProxy operator, as a {@linkcode DesiredStateSource} of the program. */
export class Operator implements DesiredStateSource {
  readonly description: string;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #watch: "*" | readonly string[];
  readonly #instance: string;
  readonly #replica: string;
  readonly #node: string | undefined;
  readonly #services: ManagedService[];
  readonly #view: SupervisorView;
  readonly #countError: CountOperatorError;
  readonly #observer: LoopObserver;
  readonly #heartbeatMs: number;
  readonly #staleAfterMs: number;
  readonly #resyncMs: number;
  readonly #minPassIntervalMs: number;
  readonly #reflectorOptions: OperatorOptions["reflector"];
  readonly #allowedTargetNamespaces: OperatorOptions["allowedTargetNamespaces"];
  readonly #recorder: EventRecorder;
  readonly #backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  readonly #streams: StreamServicesSource | undefined;
  #reportedEntries = new Set<string>();
  #lastOwners: ReadonlyMap<string, ConfigMap> = new Map();
  #proxyReflectors: Reflector<UnDyingProxy>[] = [];
  #serviceReflectors = new Map<string, Reflector<Service>>();
  #lastStatuses = new Map<string, ForwarderStatus>();
  #lastObjects = new Map<string, UnDyingProxy>();
  /** What this replica last wrote per object uid, while the watch has not shown it yet. */
  #written = new Map<string, { key: string; at: number }>();
  #reportedInvalid = new Set<string>();
  /** Why objects have no Service port, by forwarder name, as the last pass found. */
  #servicePortProblems: ReadonlyMap<string, string> = new Map();

  /** @throws {RangeError} when the namespace is missing or a duration is not positive. */
  constructor(options: OperatorOptions) {
    if (options.operatorNamespace === "") {
      throw new RangeError(
        "--operator-namespace is required in operator mode (the namespace of the operator and " +
          "of its Services); or pass --config FILE for standalone mode",
      );
    }
    this.#client = options.client;
    this.#namespace = options.operatorNamespace;
    const watch = options.watchNamespaces ?? [];
    this.#watch = watch === "*" ? "*" : watch.length === 0 ? [this.#namespace] : watch;
    this.#instance = options.instanceName ?? "";
    this.#replica = options.replica;
    this.#node = options.node;
    this.#services = managedServices(options.tcpService ?? "", options.udpService ?? "");
    this.#view = options.view;
    this.#countError = options.countError ?? (() => {});
    this.#observer = options.observer ?? NO_OBSERVER;
    this.#heartbeatMs = options.heartbeatMs ?? 60_000;
    this.#staleAfterMs = options.staleAfterMs ?? 3 * this.#heartbeatMs;
    this.#resyncMs = options.resyncMs ?? 30_000;
    this.#minPassIntervalMs = options.minPassIntervalMs ?? 200;
    for (
      const [name, ms] of Object.entries({
        heartbeatMs: this.#heartbeatMs,
        resyncMs: this.#resyncMs,
      })
    ) {
      if (!(ms > 0)) throw new RangeError(`Operator option ${name} must be > 0, got ${ms}`);
    }
    if (!(this.#staleAfterMs > this.#heartbeatMs)) {
      throw new RangeError(
        `Operator option staleAfterMs (${this.#staleAfterMs}) must exceed heartbeatMs ` +
          `(${this.#heartbeatMs}), or live replicas would be removed`,
      );
    }
    this.#reflectorOptions = options.reflector;
    this.#allowedTargetNamespaces = options.allowedTargetNamespaces;
    this.#recorder = new EventRecorder(this.#client, {
      replica: this.#replica,
      countError: this.#countError,
      ...options.events,
    });
    const where = this.#watch === "*" ? "all namespaces" : `namespace(s) ${this.#watch.join(", ")}`;
    this.#streams = options.streamServices;
    const streams = this.#streams?.description;
    this.description = `Kubernetes ${this.#client.server} (UnDyingProxies in ${where}` +
      `${streams ? `, ingress-nginx ConfigMaps ${streams}` : ""}` +
      `${this.#instance ? `, instance ${this.#instance}` : ""}, replica ${this.#replica})`;
  }

  /** Runs the reconcile loop until `signal` aborts; the first `apply` follows the first full list. */
  async run(
    apply: (desired: readonly ForwarderSpec[]) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const wake = new Wake();
    const enqueue = () => {
      this.#observer.queued();
      wake.trigger();
    };
    const base = this.#reflectorOptions ?? {};
    this.#proxyReflectors = (this.#watch === "*" ? [undefined] : this.#watch).map((namespace) =>
      new Reflector(this.#client, PROXIES, { ...base, ...(namespace ? { namespace } : {}) })
    );
    this.#serviceReflectors = new Map(this.#services.map((s) => [
      s.name,
      new Reflector(this.#client, SERVICES, {
        ...base,
        namespace: this.#namespace,
        fieldSelector: `metadata.name=${s.name}`,
      }),
    ]));
    // A reflector that dies (it should not: it retries by itself) stops the whole source, so the
    // program exits and restarts instead of running on a store nobody updates.
    const failed = new AbortController();
    let failure: unknown;
    const running = AbortSignal.any([signal, failed.signal]);
    const consume = async (
      reflector: Reflector<UnDyingProxy> | Reflector<Service> | Reflector<ConfigMap>,
    ) => {
      try {
        for await (const event of reflector.run(running)) {
          if (event.type === "error") this.#countError("FailedFetch");
          else enqueue();
        }
      } catch (error) {
        failure ??= error;
        failed.abort();
      }
    };
    const streamReflectors = this.#streams?.reflectors() ?? [];
    const consumers = [
      ...this.#proxyReflectors,
      ...streamReflectors,
      ...this.#serviceReflectors.values(),
    ].map(consume);
    const unsubscribe = this.#view.onChange(enqueue);
    let delayMs = this.#resyncMs;
    let lastPassAt = Number.NEGATIVE_INFINITY;
    try {
      while (!running.aborted) {
        await wake.wait(delayMs, running);
        if (running.aborted) break;
        if (![...this.#proxyReflectors, ...streamReflectors].every((r) => r.isSynced())) {
          delayMs = this.#resyncMs;
          continue;
        }
        try {
          // Every status write (ours and other replicas') comes back as a watch event: merge such
          // bursts into one pass instead of running a full pass per event.
          await sleep(Math.max(0, lastPassAt + this.#minPassIntervalMs - Date.now()), running);
          this.#observer.started();
          const pass = await this.#pass(apply, running);
          this.#observer.finished(pass.failed ? "error" : "success");
          delayMs = pass.delayMs;
          lastPassAt = Date.now();
        } catch (error) {
          if (running.aborted) break;
          this.#observer.finished("error");
          delayMs = this.#backoff.next();
          logger.error("Reconcile pass failed, retrying in {delayMs} ms: {message}", {
            delayMs,
            message: errorMessage(error),
            error,
          });
        }
      }
    } finally {
      unsubscribe();
      failed.abort();
      await Promise.all(consumers);
      await this.#withdraw();
    }
    if (failure !== undefined && !signal.aborted) {
      throw new Error(
        `Watching the cluster failed: ${errorMessage(failure)}`,
        {
          cause: failure,
        },
      );
    }
  }

  /** All objects of this instance, oldest first. */
  #objects(): UnDyingProxy[] {
    return selectProxies(
      this.#proxyReflectors.flatMap((r) => [...r.store.values()]),
      this.#instance,
    );
  }

  /** One full reconcile pass; returns the delay until the next one and whether a step failed. */
  async #pass(
    apply: (desired: readonly ForwarderSpec[]) => void,
    signal: AbortSignal,
  ): Promise<{ delayMs: number; failed: boolean }> {
    const objects = this.#objects();
    const desired = desiredFromProxies(objects, this.#instance, {
      allowedTargetNamespaces: this.#allowedTargetNamespaces,
    });
    // Objects oldest first, then ConfigMap entries: the supervisor gives a contested port to the
    // first in this order and binds free ports (engine threads a moment later: the pass waits for
    // them, bounded), so the statuses read next are the ones to report.
    const streams = await this.#streams?.desired(signal);
    const streamSpecs = streams?.specs ?? [];
    apply([...desired.specs, ...streamSpecs]);
    await this.#bindsSettled(signal);
    const now = new Date();
    const byName = new Map(objects.map((o) => [forwarderName(o), o]));
    const specs = new Map([...desired.specs, ...streamSpecs].map((s) => [s.name, s]));
    const invalid = new Map(desired.invalid.map((i) => [i.name, i.problems]));
    const statuses = new Map(this.#view.statuses().map((s) => [s.name, s]));
    const failures: OperatorErrorType[] = [];
    const events: Promise<void>[] = [];
    const owners = streams?.owners ?? new Map<string, ConfigMap>();
    const note = (name: string, event: EventNote) => {
      const object = byName.get(name) ?? owners.get(name) ?? this.#lastObjects.get(name) ??
        this.#lastOwners.get(name);
      if (object) events.push(this.#recorder.record(object, event, signal));
    };

    // Warnings first: when many listeners start in one pass, the Event rate limit drops the
    // routine `Listening` Events, not the ones that say what is wrong.
    this.#reportInvalid(byName, invalid, note);
    this.#reportRejected(streams?.rejected ?? [], (configMap, event) => {
      events.push(this.#recorder.record(configMap, event, signal));
    });
    const transitions = listenerTransitions({
      previous: this.#lastStatuses,
      current: statuses,
      specs,
      replica: this.#replica,
    });
    for (const t of transitions.sort((a, b) => warningsFirst(a.note) - warningsFirst(b.note))) {
      if (t.error) this.#countError(t.error);
      note(t.name, t.note);
    }
    this.#lastStatuses = statuses;

    for (const object of objects) {
      if (isDeleting(object) || hasFinalizer(object)) continue;
      try {
        if (await addFinalizer({ client: this.#client, resource: PROXIES, object, signal })) {
          logger.debug("Added the finalizer to {object}", { object: forwarderName(object) });
        }
      } catch (error) {
        failures.push("FailedAddFinalizer");
        this.#warn("Cannot add the finalizer to {object}: {message}", forwarderName(object), error);
      }
    }

    const services = await this.#syncServices(
      [...desired.specs, ...streamSpecs],
      byName,
      note,
      failures,
      signal,
    );
    this.#servicePortProblems = services.problems;

    await forEachLimit(objects, 8, async (object) => {
      try {
        await this.#syncStatus(object, { specs, invalid, statuses, services, now, signal });
      } catch (error) {
        failures.push("FailedUpdateStatus");
        this.#warn("Cannot write the status of {object}: {message}", forwarderName(object), error);
      }
    });

    for (const object of objects) {
      if (!isDeleting(object) || !hasFinalizer(object)) continue;
      if (!this.#mayRelease(object, { statuses, services, now })) continue;
      try {
        if (await removeFinalizer({ client: this.#client, resource: PROXIES, object, signal })) {
          logger.info("Released deleted {object}", { object: forwarderName(object) });
        }
      } catch (error) {
        failures.push("FailedRemoveFinalizer");
        this.#warn(
          "Cannot remove the finalizer of {object}: {message}",
          forwarderName(object),
          error,
        );
      }
    }

    await Promise.all(events);
    this.#lastObjects = byName;
    this.#lastOwners = owners;
    const uids = new Set(objects.map((o) => o.metadata.uid));
    for (const uid of this.#written.keys()) if (!uids.has(uid)) this.#written.delete(uid);
    for (const type of failures) this.#countError(type);
    if (failures.length > 0 && !signal.aborted) {
      return { delayMs: this.#backoff.next(), failed: true };
    }
    this.#backoff.reset();
    return { delayMs: Math.min(this.#resyncMs, this.#heartbeatMs / 4), failed: false };
  }

  #reportInvalid(
    byName: ReadonlyMap<string, UnDyingProxy>,
    invalid: ReadonlyMap<string, readonly SpecProblem[]>,
    note: (name: string, event: EventNote) => void,
  ): void {
    const seen = new Set<string>();
    for (const [name, problems] of invalid) {
      const object = byName.get(name);
      const key = `${object?.metadata.uid}/${object?.metadata.generation}`;
      seen.add(key);
      if (this.#reportedInvalid.has(key)) continue;
      const message = describeProblems(problems);
      const reason = problems.every((p) => p.forbidden) ? "TargetForbidden" : "InvalidSpec";
      logger.warn("Ignoring {object}: {reason}: {message}", { object: name, reason, message });
      this.#countError(reason);
      note(name, { type: "Warning", reason, message });
    }
    this.#reportedInvalid = seen;
  }

  /** Waits (at most {@linkcode BIND_SETTLE_MS}) for binds in engine threads, so the pass reports them. */
  async #bindsSettled(signal: AbortSignal): Promise<void> {
    if (this.#view.settled === undefined) return;
    const bounded = new AbortController();
    try {
      await Promise.race([
        this.#view.settled(),
        abortableDelay(BIND_SETTLE_MS, AbortSignal.any([signal, bounded.signal])),
      ]);
    } finally {
      bounded.abort();
    }
  }

  /** Logs, counts and records (on the ConfigMap) each unusable entry once per ConfigMap version. */
  #reportRejected(
    rejected: readonly RejectedEntry[],
    record: (configMap: ConfigMap, event: EventNote) => void,
  ): void {
    const seen = new Set<string>();
    for (const entry of rejected) {
      const meta = entry.configMap.metadata ?? {};
      const key = `${meta.uid}/${meta.resourceVersion}/${entry.protocol}/${entry.key}`;
      seen.add(key);
      if (this.#reportedEntries.has(key)) continue;
      const message = describeRejected(entry);
      logger.warn("Not forwarding an entry of ConfigMap {configMap}: {message}", {
        configMap: `${meta.namespace}/${meta.name}`,
        message,
      });
      this.#countError("InvalidConfigMapEntry");
      record({ apiVersion: "v1", kind: "ConfigMap", ...entry.configMap }, {
        type: "Warning",
        reason: "InvalidEntry",
        message,
      });
    }
    this.#reportedEntries = seen;
  }

  async #syncServices(
    desired: readonly ForwarderSpec[],
    byName: ReadonlyMap<string, UnDyingProxy>,
    note: (name: string, event: EventNote) => void,
    failures: OperatorErrorType[],
    signal: AbortSignal,
  ): Promise<ServiceOutcome> {
    const problems = new Map<string, string>();
    let allSynced = true;
    for (const service of this.#services) {
      const reflector = this.#serviceReflectors.get(service.name);
      const cached = reflector?.isSynced()
        ? reflector.store.get(`${this.#namespace}/${service.name}`)
        : undefined;
      const result = await syncServicePorts({
        client: this.#client,
        namespace: this.#namespace,
        managed: service,
        desired,
        cached,
        signal,
      });
      for (const [owner, problem] of result.problems) {
        problems.set(owner, problem);
        note(owner, { type: "Warning", reason: "ServicePortFailed", message: problem });
      }
      for (const added of result.added) {
        logger.info("Added port {port} to Service {service}", {
          port: `${added.name} (${added.protocol} ${added.port})`,
          service: service.name,
        });
        note(added.owner, {
          type: "Normal",
          reason: "ServicePortAdded",
          message: `Added ${added.protocol} port ${added.port} (${added.name}) to Service ` +
            `${this.#namespace}/${service.name}`,
        });
      }
      for (const removed of result.removed) {
        logger.info("Removed port {port} from Service {service}", {
          port: removed.name,
          service: service.name,
        });
        const owner = this.#portOwner(removed.name ?? "", service, byName);
        if (owner !== undefined) {
          note(owner, {
            type: "Normal",
            reason: "ServicePortRemoved",
            message:
              `Removed ${removed.protocol ?? "TCP"} port ${removed.port} (${removed.name}) ` +
              `from Service ${this.#namespace}/${service.name}`,
          });
        }
      }
      if (result.error) {
        allSynced = false;
        const deleting = [...byName.values()].some(isDeleting);
        failures.push(
          service.protocols.includes("TCP") ? "FailedManageTCPService" : "FailedManageUDPService",
        );
        if (deleting) failures.push("FailedServiceCleanup");
        logger.warn("Cannot keep the ports of Service {service}: {message}", {
          service: `${this.#namespace}/${service.name}`,
          message: result.error.message,
        });
      }
    }
    return { problems, allSynced };
  }

  /** The object (by forwarder name) a Service port name belongs to, among current and last objects. */
  #portOwner(
    port: string,
    service: ManagedService,
    byName: ReadonlyMap<string, UnDyingProxy>,
  ): string | undefined {
    const prefixed = service.protocols.length > 1;
    for (const name of new Set([...byName.keys(), ...this.#lastObjects.keys()])) {
      const slash = name.indexOf("/");
      const ns = name.slice(0, slash);
      const objectName = name.slice(slash + 1);
      for (const protocol of service.protocols) {
        const owner = { namespace: ns, name: objectName, operatorNamespace: this.#namespace };
        if (servicePortName(protocol, { ...owner, prefixed }) === port) return name;
      }
    }
    return undefined;
  }

  async #syncStatus(object: UnDyingProxy, pass: PassState): Promise<void> {
    const { specs, invalid, statuses, services, now, signal } = pass;
    const name = forwarderName(object);
    const uid = object.metadata.uid ?? name;
    const plan = planStatus({
      object,
      replica: { name: this.#replica, node: this.#node },
      spec: specs.get(name) ?? { problems: invalid.get(name) ?? [] },
      forwarder: statuses.get(name),
      servicePortProblem: services.problems.get(name),
      last: this.#written.get(uid),
      heartbeatMs: this.#heartbeatMs,
      staleAfterMs: this.#staleAfterMs,
      now,
    });
    if (plan.write) {
      await applyReplicaStatus({
        client: this.#client,
        resource: PROXIES,
        object,
        entry: plan.entry,
        summary: plan.summary,
        signal,
      });
      this.#written.set(uid, { key: plan.key, at: now.getTime() });
    }
    if (plan.stale.length === 0) return;
    try {
      const names = new Set(plan.stale);
      if (
        await removeReplicaEntries({
          client: this.#client,
          resource: PROXIES,
          object,
          names,
          signal,
        })
      ) {
        logger.info("Removed stale status entries {replicas} of {object}", {
          replicas: plan.stale.join(", "),
          object: name,
        });
      }
    } catch (error) {
      this.#countError("FailedRemoveStaleReplica");
      this.#warn("Cannot remove stale status entries of {object}: {message}", name, error);
    }
  }

  /** True when a deleted object's finalizer may go (see the module doc, step 6). */
  #mayRelease(
    object: UnDyingProxy,
    pass: Pick<PassState, "statuses" | "services" | "now">,
  ): boolean {
    const { statuses, services, now } = pass;
    const name = forwarderName(object);
    if (statuses.has(name)) return false;
    if (!services.allSynced) {
      logger.warn("Releasing {object} although its Service ports could not be removed", {
        object: name,
      });
    }
    const deletedAt = Date.parse(object.metadata.deletionTimestamp ?? "");
    if (now.getTime() - deletedAt > this.#staleAfterMs) return true;
    return othersListening({
      object,
      replica: this.#replica,
      now,
      staleAfterMs: this.#staleAfterMs,
    }).length === 0;
  }

  /**
   * At shutdown: takes this replica's entries out of every status and writes the summary of the
   * entries left (Ready False when no replica is left listening), bounded in time.
   */
  async #withdraw(): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(5_000, this.#heartbeatMs));
    const objects = this.#objects().filter((o) =>
      o.status?.replicas?.some((e) => e.name === this.#replica)
    );
    const desired = desiredFromProxies(objects, this.#instance);
    const specs = new Map(desired.specs.map((s) => [s.name, s]));
    const invalid = new Map(desired.invalid.map((i) => [i.name, i.problems]));
    const plan = (object: UnDyingProxy) => {
      const name = forwarderName(object);
      return planWithdrawal({
        object,
        replica: this.#replica,
        spec: specs.get(name) ?? { problems: invalid.get(name) ?? [] },
        servicePortProblem: this.#servicePortProblems.get(name),
        staleAfterMs: this.#staleAfterMs,
        now: new Date(),
      });
    };
    try {
      await forEachLimit(objects, 8, async (object) => {
        await withdrawReplica({
          client: this.#client,
          resource: PROXIES,
          object,
          replica: this.#replica,
          plan,
          signal,
        });
      });
    } catch (error) {
      logger.debug("Could not withdraw every status entry at shutdown: {message}", {
        message: errorMessage(error),
      });
    }
  }

  #warn(template: string, object: string, error: unknown): void {
    logger.warn(template, {
      object,
      message: errorMessage(error),
    });
  }
}

/** Sort key that puts Warning Events before Normal ones. */
function warningsFirst(note: EventNote): number {
  return note.type === "Warning" ? 0 : 1;
}
