import { context, propagation, trace, type Context, type Span, type SpanOptions } from '@opentelemetry/api';

/**
 * OpenTelemetry for every Stratus process. Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_
 * variant) is set: then a tracer provider exports over OTLP/HTTP as the standard OTEL_* variables say
 * (endpoint, headers, OTEL_SERVICE_NAME, OTEL_BSP_* batching). Off, the API's no-op tracer makes every
 * span below free: no provider, no context manager, no export.
 */
export const tracingEnabled = (env: NodeJS.ProcessEnv = process.env): boolean =>
  Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true';

export interface Tracing {
  /** For the Temporal worker's workflow-span sink (the workflow sandbox cannot export by itself). */
  spanProcessor: import('@opentelemetry/sdk-trace-base').SpanProcessor;
  resource: import('@opentelemetry/resources').Resource;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

let started: Promise<Tracing | undefined> | undefined;

/** Starts tracing once per process (the first role to ask names the service); undefined when off. */
export function startTracing(serviceName: string): Promise<Tracing | undefined> {
  return (started ??= (async () => {
    if (!tracingEnabled()) return undefined;
    const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { Resource }] = await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
    const resource = new Resource({ 'service.name': process.env.OTEL_SERVICE_NAME || serviceName });
    const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter());
    const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
    // Registers the AsyncLocalStorage context manager and the W3C traceparent propagator too.
    provider.register();
    return { spanProcessor, resource, flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() };
  })());
}

export const tracer = () => trace.getTracer('stratus');

/** Runs `work` inside a new span (a child of the active one), ending it with the outcome. */
export async function inSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>, parent: Context = context.active()): Promise<T> {
  return tracer().startActiveSpan(name, options, parent, async (span) => {
    try {
      return await work(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: 2, message: (e as Error)?.message });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** The active span's W3C traceparent, for a host-agent request or an event's metadata; undefined when none. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** The context a received traceparent names (the agent side of a call). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  return traceparent ? propagation.extract(context.active(), { traceparent }) : context.active();
}

/** The active trace's id, for Operation.traceId and log lines; undefined outside a sampled span. */
export function currentTraceId(): string | undefined {
  const span = trace.getSpan(context.active())?.spanContext();
  return span && trace.isSpanContextValid(span) ? span.traceId : undefined;
}

/** `{ traceId }` of the active trace, for an operation's OperationRequested; `{}` when tracing is off. */
export function traceOfRequest(): { traceId?: string } {
  const traceId = currentTraceId();
  return traceId ? { traceId } : {};
}
