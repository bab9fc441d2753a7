import { randomBytes } from 'node:crypto';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { GatewayConfig } from '@nondivy/config';
import { observability, problemClientErrorHandler, problemErrorHandler, problemFrameworkErrors, RequestLogsAtDebug } from '@nondivy/http';
import { redisReady } from '@nondivy/state';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { GatewayDeps } from './deps.js';
import { authn } from './plugins/authn.js';
import { answerWhileClosing } from './plugins/closing.js';
import { authRoutes } from './routes/auth.js';
import { deviceRoutes } from './routes/devices.js';
import { federationRoutes, peerRoutes } from './routes/federation.js';
import { eventRoutes } from './routes/events.js';
import { libraryRoutes, UPLOAD_FORM_LIMITS } from './routes/library.js';
import { uploadRoutes } from './routes/uploads.js';
import { guardSlowClients, slowClientServerOptions } from './plugins/slow-clients.js';
import { findWebRoot, webApp } from './web/static.js';

/** Largest JSON body the API accepts (logins, edits): uploads go through multipart instead. */
const JSON_BODY_LIMIT = 64 * 1024;

/** How long an idle keep-alive connection stays open between requests. */
const IDLE_KEEP_ALIVE_MS = 5000;

/**
 * Builds the gateway — the public REST API — without listening, so tests and the standalone
 * process can start it the same way. Routes live under /api/v1; /healthz, /readyz, /metrics and
 * /docs at the root.
 */
export async function buildGateway(config: GatewayConfig, deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: JSON_BODY_LIMIT,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: 'x-request-id',
    genReqId: () => randomBytes(8).toString('hex'),
    routerOptions: { maxParamLength: 200 },
    // No deadline for a whole request: uploads of many gigabytes may take hours. Slow clients are
    // cut by rate and by deadline per kind of body instead (plugins/slow-clients.ts).
    requestTimeout: 0,
    http: slowClientServerOptions(config.http.limits),
    // An idle keep-alive connection is closed after this long (Node's default; fastify's is 72 s).
    keepAliveTimeout: IDLE_KEEP_ALIVE_MS,
    // Closing is answered by the hook below (in our words, and tus HEADs with 423).
    return503OnClosing: false,
    // Requests are logged at debug (failures at warn and error); refused URLs and malformed
    // requests are answered with problem documents like every other error.
    logController: new RequestLogsAtDebug(),
    clientErrorHandler: problemClientErrorHandler,
    frameworkErrors: problemFrameworkErrors,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(problemErrorHandler);
  guardSlowClients(app, config.http.limits, deps.log);
  answerWhileClosing(app);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Nondivy API', version: '1', description: `The REST API of the Nondivy site "${config.siteName}".` },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(observability, {
    service: 'gateway',
    checks: {
      redis: async () => {
        if (!(await redisReady(deps.redis))) throw new Error('redis does not answer');
      },
      blobs: () => deps.blobs.ready(),
    },
  });
  await app.register(authn, { auth: deps.auth });
  await app.register(multipart, {
    // Larger parser and file-stream buffers: fewer pause/resume rounds per megabyte uploaded.
    highWaterMark: 1024 * 1024,
    fileHwm: 1024 * 1024,
    // The file name as sent, folders included: the upload route refuses a name the library would
    // change (naming the accepted one) rather than have the parser strip its folders silently.
    preservePath: true,
    limits: {
      fileSize: config.library.maxUploadBytes,
      files: UPLOAD_FORM_LIMITS.files,
      fields: UPLOAD_FORM_LIMITS.fields,
      parts: UPLOAD_FORM_LIMITS.parts,
      fieldNameSize: UPLOAD_FORM_LIMITS.fieldNameBytes,
      fieldSize: UPLOAD_FORM_LIMITS.fieldBytes,
      headerPairs: UPLOAD_FORM_LIMITS.headerPairs,
    },
  });

  await app.register(
    async (api) => {
      await api.register(authRoutes, { deps });
      await api.register(eventRoutes, { hub: deps.events, deviceOf: async (req) => (await deps.sharing.deviceOf(req))?.id ?? null });
      await api.register(deviceRoutes, { sharing: deps.sharing, guestSharing: config.sharing.guestSharing });
      await api.register(federationRoutes, { deps, federation: deps.federation, publicUrl: config.http.publicUrl });
      await api.register(libraryRoutes, { deps, guestUpload: config.library.guestUpload, maxUploadBytes: config.library.maxUploadBytes });
      await api.register(uploadRoutes, { uploads: deps.uploads, guestUpload: config.library.guestUpload });
    },
    { prefix: '/api/v1' },
  );
  await app.register(peerRoutes, { prefix: '/federation/v1', deps });
  // The web app at / (clients/web, built into dist/web), with its strict CSP; it also answers every
  // 404: problem+json under the API's paths, index.html for the app's own addresses elsewhere.
  await app.register(webApp, { root: findWebRoot() });
  app.addHook('onClose', async () => {
    deps.events.close();
    deps.federation.stop();
  });
  return app;
}
