/**
 * Entry point of the Web Worker that parses a config file off the main thread
 * ({@linkcode parseConfigOffThread}), so that a large file never stalls forwarding.
 * @module
 */

/// <reference lib="deno.worker" />

import { ConfigError, parseConfig } from "./file_source.ts";
import type { ParseReply, ParseRequest } from "./config_parse.ts";

self.onmessage = (event: MessageEvent<ParseRequest>) => {
  const { path, text } = event.data;
  let reply: ParseReply;
  try {
    reply = { kind: "specs", specs: parseConfig(path, text) };
  } catch (error) {
    reply = error instanceof ConfigError
      ? { kind: "invalid", problems: error.problems }
      : { kind: "failed", message: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(reply);
};
