import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { AgentError, type HypervisorDriver } from './driver.js';
import { driverCalls } from './driverCalls.js';
import { requestFingerprint, type IdempotencyJournal, type Outcome } from './idempotency.js';
import { lineReader, lineWriter } from './ndjson.js';
import { isMethodName, MAX_MESSAGE_BYTES, methods, Request, RequestId, type WireError } from './protocol.js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { componentLog } from '../server/log.js';
import { contextFromTraceparent, inSpan } from '../server/telemetry.js';

const log = componentLog('hostagent.session');

export interface AgentCore {
  driver: HypervisorDriver;
  journal: IdempotencyJournal;
}

/**
 * Serves the protocol on one byte stream: an SSH subsystem channel in the agent, or a plain TCP
 * socket in the benchmark (so SSH's cost can be measured against the same handler). Every request
 * runs concurrently; a bad message gets a BAD_REQUEST response and the stream carries on.
 */
export function serveAgentStream(stream: Duplex, core: AgentCore): void {
  const out = lineWriter(stream);
  const inflight = new Map<RequestId, AbortController>();
  const read = lineReader(
    MAX_MESSAGE_BYTES,
    (line) => void handleLine(line, core, out.send, inflight),
    (bytes) => out.send(badRequest(null, `message of ${bytes}+ bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`)),
  );
  stream.on('data', read);
  stream.on('error', (err: Error) => log.debug({ err }, 'agent stream error'));
  // In-flight calls are deliberately not aborted when the peer goes away: they finish and record their
  // outcome, so the controller's retry with the same idempotency key gets it instead of a second run.
}

async function handleLine(
  line: string,
  core: AgentCore,
  send: (m: unknown) => void,
  inflight: Map<RequestId, AbortController>,
): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return send(badRequest(null, 'malformed JSON'));
  }
  const req = Request.safeParse(raw);
  if (!req.success) {
    const id = RequestId.safeParse((raw as { id?: unknown } | null)?.id);
    return send(badRequest(id.success ? id.data : null, `bad request: ${z.prettifyError(req.error)}`));
  }
  const { id, method, idempotencyKey, traceparent } = req.data;
  if (!isMethodName(method)) return send(badRequest(id, `unknown method ${JSON.stringify(method)}`));
  const spec = methods[method];
  const params = spec.params.safeParse(req.data.params ?? {});
  if (!params.success) return send(badRequest(id, `bad params for ${method}: ${z.prettifyError(params.error)}`));

  if (method === 'cancel') {
    const target = inflight.get((params.data as { id: RequestId }).id);
    target?.abort(new AgentError('CANCELLED', 'cancelled by the caller'));
    return send({ id, result: { cancelled: target !== undefined } });
  }
  if (spec.mutating && !idempotencyKey) return send(badRequest(id, `${method} changes state and needs an idempotencyKey`));
  if (inflight.has(id)) return send(badRequest(id, `request id ${id} is already in flight on this channel`));

  const abort = new AbortController();
  inflight.set(id, abort);
  const ctx = {
    signal: abort.signal,
    progress: (p: unknown) => send({ id, progress: p }),
    ...(idempotencyKey ? { idempotencyKey } : {}),
  };
  // The driver's work is a span of its own: a repeat answered from the journal has the agent span only.
  const call = (): Promise<Outcome> =>
    inSpan(`driver ${method}`, {}, async (span) => {
      try {
        const run = driverCalls[method] as (d: HypervisorDriver, p: unknown, c: typeof ctx) => Promise<unknown>;
        // The result is checked too: a driver that breaks the contract fails here, not in the controller.
        return { result: spec.result.parse(await run(core.driver, params.data, ctx)) };
      } catch (e) {
        const error = toWireError(e);
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.code}: ${error.message}` });
        return { error };
      }
    });
  // The controller's activity span (traceparent) is the parent: one trace from the API to the hypervisor.
  await inSpan(
    `hostagent ${method}`,
    { kind: SpanKind.SERVER, attributes: { 'stratus.agent.method': method, ...(idempotencyKey ? { 'stratus.agent.idempotency_key': idempotencyKey } : {}) } },
    async () => {
      try {
        const outcome = spec.mutating
          ? await core.journal.run(idempotencyKey!, requestFingerprint(method, params.data), call)
          : await call();
        if (spec.mutating) log.debug({ id, method, idempotencyKey, traceparent, ok: 'result' in outcome }, 'call done');
        send({ id, ...outcome });
      } catch (e) {
        send({ id, error: toWireError(e) });
      } finally {
        inflight.delete(id);
      }
    },
    contextFromTraceparent(traceparent),
  );
}

function badRequest(id: RequestId | null, message: string) {
  return { id, error: { code: 'BAD_REQUEST', message, retryable: false } satisfies WireError };
}

/** The one place an exception becomes a wire error. Unknown exceptions are INTERNAL (retryable). */
export function toWireError(e: unknown): WireError {
  if (e instanceof AgentError) return { code: e.code, message: e.message, retryable: e.retryable };
  if (e instanceof z.ZodError) return { code: 'INTERNAL', message: `driver broke the contract: ${z.prettifyError(e)}`, retryable: false };
  log.error({ err: e }, 'unexpected error in driver call');
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e), retryable: true };
}
