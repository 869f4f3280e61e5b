import { HostAgentClient, type HostAgentClientOptions, type HostAgentEndpoint } from './client.js';

/**
 * One client per host, shared by every activity on a worker, so calls to a host reuse one SSH
 * connection. A host re-registered with another address or key gets a fresh client.
 */
export class HostAgentPool {
  private readonly clients = new Map<string, HostAgentClient>();

  constructor(private readonly defaults: Omit<HostAgentClientOptions, keyof HostAgentEndpoint>) {}

  get(hostId: string, endpoint: HostAgentEndpoint): HostAgentClient {
    const existing = this.clients.get(hostId);
    const same =
      existing &&
      existing.endpoint.host === endpoint.host &&
      existing.endpoint.port === endpoint.port &&
      existing.endpoint.fingerprint === endpoint.fingerprint;
    if (existing && same) return existing;
    existing?.close();
    const client = new HostAgentClient({ ...this.defaults, ...endpoint });
    this.clients.set(hostId, client);
    return client;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
