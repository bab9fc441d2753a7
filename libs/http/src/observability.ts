import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { sendProblem } from './problem.js';

export type ReadinessCheck = () => Promise<void>;

export interface ObservabilityOptions {
  service: string;
  /** Named dependency checks for /readyz; each throws when its dependency does not answer. */
  checks: Record<string, ReadinessCheck>;
  /** Per-check time limit, ms. */
  checkTimeoutMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

/**
 * Fastify's per-request lines ("incoming request", "request completed", a route not found, a client
 * that went away mid-download) at debug instead of info: at the default level a busy LAN site would
 * log two lines per thumbnail. A request that errored stays an error and a 5xx answer a warning, so
 * failures are logged at every level; LOG_LEVEL=debug shows every request again.
 */
export class RequestLogsAtDebug extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, _request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else if (reply.statusCode >= 500) reply.log.warn({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.debug({ method: request.method }, 'route not found');
  }

  override streamError(error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply): void {
    if (error.code === 'ERR_STREAM_PREMATURE_CLOSE') reply.log.debug({ res: reply }, 'stream closed prematurely');
    else super.streamError(error, request, reply);
  }
}

const withTimeout = (p: Promise<void>, ms: number) =>
  Promise.race([p, new Promise<void>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref())]);

/**
 * `/healthz` (the process is alive), `/readyz` (its dependencies answer) and `/metrics`
 * (Prometheus text) for every HTTP service, plus request counters and durations per route.
 */
export const observability = fp(
  async (app: FastifyInstance, opts: ObservabilityOptions) => {
    const registry = new Registry();
    registry.setDefaultLabels({ service: opts.service });
    collectDefaultMetrics({ register: registry });
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    });
    const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
    app.decorate('metrics', registry);

    app.addHook('onResponse', async (req, reply) => {
      const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
      duration.observe(labels, reply.elapsedTime / 1000);
      requests.inc(labels);
    });

    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_req, reply) => {
      const results = await Promise.all(
        Object.entries(opts.checks).map(async ([name, check]) => {
          try {
            await withTimeout(check(), opts.checkTimeoutMs ?? 2000);
            return [name, { ok: true }] as const;
          } catch (err) {
            return [name, { ok: false, error: (err as Error).message }] as const;
          }
        }),
      );
      const checks = Object.fromEntries(results);
      const ok = results.every(([, r]) => r.ok);
      if (!ok) return sendProblem(reply, 503, 'A dependency is not ready', { checks });
      return { status: 'ok', checks };
    });
    app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  },
  { name: 'nondivy-observability', fastify: '5.x' },
);
