import ssh2, { type ClientChannel } from 'ssh2';
import { z } from 'zod';
import { AgentError, type Progress } from './driver.js';
import { sshFingerprint } from './hostKey.js';
import { lineReader, lineWriter } from './ndjson.js';
import { MAX_MESSAGE_BYTES, methods, Response, SUBSYSTEM, type MethodName, type ParamsOf, type ResultOf } from './protocol.js';
import { sshAlgorithms } from './sshAlgorithms.js';

export interface HostAgentEndpoint {
  host: string;
  port: number;
  /** The host key fingerprint registered for this host (`SHA256:...`); any other key is refused. */
  fingerprint: string;
}

export interface HostAgentClientOptions extends HostAgentEndpoint {
  /** The controller's private key (OpenSSH or PEM), listed in the agent's authorized_keys. */
  privateKey: string | Buffer;
  username?: string;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  connectTimeoutMs?: number;
  /** Per call, unless the call says otherwise. */
  defaultTimeoutMs?: number;
}

export interface CallOptions {
  /** Required by every method that changes anything; a repeat returns the first outcome. */
  idempotencyKey?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Long calls report progress here (activities turn it into Temporal heartbeats). */
  onProgress?: (p: Progress) => void;
  traceparent?: string;
}

interface Pending {
  method: MethodName;
  settle(message: Response): void;
  onProgress?: ((p: Progress) => void) | undefined;
}

interface Link {
  ssh: ssh2.Client;
  send(message: unknown): void;
  pending: Map<number, Pending>;
  dropped: boolean;
}

/**
 * The controller's connection to one host agent: a single SSH connection carrying one subsystem
 * channel, on which any number of calls run at once (matched by id). It connects on first use and
 * again on the next call after a drop. Errors are AgentErrors: a lost connection, a timeout or an
 * agent restart are UNAVAILABLE and retryable (retry with the same idempotency key); a wrong host key
 * or a refused client key are not retryable.
 */
export class HostAgentClient {
  private link: Promise<Link> | undefined;
  private current: Link | undefined;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: HostAgentClientOptions) {}

  get endpoint(): HostAgentEndpoint {
    return { host: this.opts.host, port: this.opts.port, fingerprint: this.opts.fingerprint };
  }

  async call<M extends MethodName>(method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    const spec = methods[method];
    const parsed = spec.params.safeParse(params ?? {});
    if (!parsed.success) throw new AgentError('BAD_REQUEST', `bad params for ${method}: ${z.prettifyError(parsed.error)}`);
    if (spec.mutating && !options.idempotencyKey) throw new AgentError('BAD_REQUEST', `${method} needs an idempotencyKey`);
    if (options.signal?.aborted) throw new AgentError('CANCELLED', `${method} cancelled before it was sent`);
    const link = await this.connect();
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.opts.defaultTimeoutMs ?? 120_000;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        link.pending.delete(id);
        settle();
      };
      // The agent keeps running a timed-out call and records its outcome; a retry with the same key gets it.
      const timer = setTimeout(
        () => finish(() => reject(new AgentError('UNAVAILABLE', `${method} on ${this.where} timed out after ${timeoutMs} ms`, true))),
        timeoutMs,
      );
      const onAbort = () => {
        if (!link.dropped) link.send({ id: this.nextId++, method: 'cancel', params: { id } });
        finish(() => reject(new AgentError('CANCELLED', `${method} on ${this.where} cancelled`)));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      link.pending.set(id, {
        method,
        onProgress: options.onProgress,
        settle: (m) =>
          finish(() => {
            if ('error' in m) return reject(new AgentError(m.error.code, m.error.message, m.error.retryable));
            const result = spec.result.safeParse((m as { result: unknown }).result);
            if (result.success) resolve(result.data as ResultOf<M>);
            else reject(new AgentError('INTERNAL', `${method} result from ${this.where} is malformed: ${z.prettifyError(result.error)}`, false));
          }),
      });
      link.send({
        id,
        method,
        params: parsed.data,
        ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
        ...(options.traceparent ? { traceparent: options.traceparent } : {}),
      });
    });
  }

  /** Closes the connection; calls in flight fail with UNAVAILABLE. */
  close(): void {
    this.closed = true;
    if (this.current) this.drop(this.current, 'client closed');
  }

  private get where() {
    return `${this.opts.host}:${this.opts.port}`;
  }

  private connect(): Promise<Link> {
    if (this.closed) return Promise.reject(new AgentError('UNAVAILABLE', `client for ${this.where} is closed`, false));
    if (!this.link) {
      const opening = this.open();
      this.link = opening;
      // A failed connect is not cached: the next call tries again.
      opening.catch(() => {
        if (this.link === opening) this.link = undefined;
      });
    }
    return this.link;
  }

  private open(): Promise<Link> {
    return new Promise((resolve, reject) => {
      const ssh = new ssh2.Client();
      let offered: string | undefined;
      let link: Link | undefined;
      const fail = (e: AgentError) => {
        if (link) return this.drop(link, e.message);
        reject(e);
        ssh.end();
      };
      ssh.on('ready', () => {
        ssh.setNoDelay(true);
        ssh.subsys(SUBSYSTEM, (err, channel: ClientChannel) => {
          if (err) return fail(new AgentError('UNAVAILABLE', `${this.where} refused subsystem ${SUBSYSTEM}: ${err.message}`, true));
          const out = lineWriter(channel);
          const l: Link = { ssh, send: out.send, pending: new Map(), dropped: false };
          channel.on('data', lineReader(MAX_MESSAGE_BYTES, (line) => this.receive(l, line), () => this.drop(l, 'agent sent an oversized message')));
          channel.on('close', () => this.drop(l, 'channel closed'));
          link = l;
          this.current = l;
          resolve(l);
          if (this.closed) this.drop(l, 'client closed');
        });
      });
      ssh.on('error', (err: Error & { level?: string }) => fail(this.connectError(err, offered)));
      ssh.on('close', () => fail(new AgentError('UNAVAILABLE', `connection to ${this.where} closed`, true)));
      ssh.connect({
        host: this.opts.host,
        port: this.opts.port,
        username: this.opts.username ?? 'stratus',
        privateKey: this.opts.privateKey,
        algorithms: sshAlgorithms,
        readyTimeout: this.opts.connectTimeoutMs ?? 10_000,
        keepaliveInterval: this.opts.keepaliveIntervalMs ?? 5_000,
        keepaliveCountMax: this.opts.keepaliveCountMax ?? 3,
        hostVerifier: (key: Buffer) => {
          offered = sshFingerprint(key);
          return offered === this.opts.fingerprint;
        },
      });
    });
  }

  private connectError(err: Error & { level?: string }, offered: string | undefined): AgentError {
    if (offered !== undefined && offered !== this.opts.fingerprint) {
      return new AgentError(
        'HOST_KEY_MISMATCH',
        `host key of ${this.where} is ${offered}, but ${this.opts.fingerprint} is registered for it; refusing to connect`,
        false,
      );
    }
    if (err.level === 'client-authentication') {
      return new AgentError('UNAUTHORIZED', `${this.where} refused our key: ${err.message}`, false);
    }
    return new AgentError('UNAVAILABLE', `cannot reach host agent at ${this.where}: ${err.message}`, true);
  }

  private receive(link: Link, line: string) {
    let message: Response;
    try {
      message = Response.parse(JSON.parse(line));
    } catch {
      return this.drop(link, 'agent sent a malformed message');
    }
    if (message.id === null) return; // a complaint about a line we did not send as such; nothing to match
    const pending = link.pending.get(message.id as number);
    if (!pending) return; // a call that timed out or was cancelled
    if ('progress' in message) pending.onProgress?.(message.progress);
    else pending.settle(message);
  }

  private drop(link: Link, reason: string) {
    if (link.dropped) return;
    link.dropped = true;
    if (this.current === link) {
      this.current = undefined;
      this.link = undefined;
    }
    const error = { id: 0, error: { code: 'UNAVAILABLE' as const, message: `connection to ${this.where} lost: ${reason}`, retryable: true } };
    for (const p of [...link.pending.values()]) p.settle(error);
    link.ssh.end();
  }
}
