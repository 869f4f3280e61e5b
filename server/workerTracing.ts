import { createRequire } from 'node:module';
import type { WorkerOptions } from '@temporalio/worker';
import { startTracing } from './telemetry.js';

const require = createRequire(import.meta.url);

/**
 * What a worker adds when tracing is on: Temporal's OpenTelemetry interceptors (a span per workflow
 * run and per activity, children of the span that started the workflow) and the sink through which
 * the workflow sandbox hands its spans to this process's exporter. Nothing when tracing is off, so the
 * workflow bundle and every activity stay as they are.
 */
export async function tracedWorkerOptions(): Promise<Pick<WorkerOptions, 'interceptors' | 'sinks'>> {
  const tracing = await startTracing('stratus');
  if (!tracing) return {};
  const { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } = await import(
    '@temporalio/interceptors-opentelemetry/lib/worker/index.js'
  );
  return {
    interceptors: {
      workflowModules: [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')],
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
