/**
 * A scripted HTTP server on 127.0.0.1 for faults a real kube-apiserver cannot be made to produce on
 * demand (429 with Retry-After, 503, a stalled answer or watch stream). Everything else is tested
 * against the real control plane.
 */
import type { ClusterConfig } from "../../lib/kube/cluster.ts";
import { NO_CREDENTIALS } from "../../lib/kube/cluster.ts";

/** One request the fault server received. */
export interface SeenRequest {
  readonly method: string;
  readonly url: URL;
}

/** A running fault server. */
export interface FaultServer extends AsyncDisposable {
  /** Every request received so far. */
  readonly requests: SeenRequest[];
  /** A configuration for a `KubeClient` that talks plain HTTP to this server. */
  readonly config: ClusterConfig;
  /** A body that sends `lines` and then stays open until the server closes. */
  stalledBody(lines?: string[]): ReadableStream<Uint8Array>;
}

/** Starts a server answering each request with `handler(request, index)`. */
export function startFaultServer(
  handler: (request: Request, index: number, server: FaultServer) => Response | Promise<Response>,
): FaultServer {
  const requests: SeenRequest[] = [];
  const open: ReadableStreamDefaultController<Uint8Array>[] = [];
  const controller = new AbortController();
  const httpServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
    (request) => {
      requests.push({ method: request.method, url: new URL(request.url) });
      return handler(request, requests.length - 1, server);
    },
  );
  const server: FaultServer = {
    requests,
    config: plainHttpConfig(httpServer.addr.port),
    stalledBody(lines = []) {
      return new ReadableStream({
        start(stream) {
          open.push(stream);
          for (const line of lines) stream.enqueue(new TextEncoder().encode(line + "\n"));
        },
      });
    },
    async [Symbol.asyncDispose]() {
      for (const stream of open) {
        try {
          stream.close();
        } catch {
          // already closed or cancelled by the client
        }
      }
      controller.abort();
      await httpServer.finished;
    },
  };
  return server;
}

/** A configuration for a `KubeClient` that talks plain HTTP to 127.0.0.1:`port`, without credentials. */
export function plainHttpConfig(port: number): ClusterConfig {
  return {
    server: `http://127.0.0.1:${port}`,
    caCerts: [],
    credentials: NO_CREDENTIALS,
    namespace: "default",
    source: "fault server",
  };
}

/** A JSON response with `status`. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A `Status` failure response. */
export function statusResponse(
  code: number,
  reason: string,
  headers: Record<string, string> = {},
): Response {
  return json(
    {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason,
      code,
      message: `${reason} (fault server)`,
    },
    code,
    headers,
  );
}
