import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { byteSize, flag, parseEnv, port, portRange, positiveInt } from './env.js';

export { ConfigError, parseEnv, byteSize, flag, port, positiveInt } from './env.js';

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * The site name when none is set: "Nondivy on <host name>" (its first label), so that two sites on
 * one LAN are told apart from their first start.
 */
export function defaultSiteName(host = hostname()): string {
  const label = host.split('.')[0]!.trim();
  return label ? `Nondivy on ${label}`.slice(0, 100) : 'Nondivy';
}

/** Variables every service reads. */
const commonVars = {
  LOG_LEVEL: logLevel.default('info'),
  REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'expected redis://host:port[/db]' }).optional(),
  NONDIVY_DATA_DIR: z.string().default('./data'),
  NONDIVY_SITE_NAME: z.string().min(1).max(100).default(() => defaultSiteName()),
};

/**
 * NONDIVY_LOG_FORMAT (`json` or `pretty`) of the standalone process; unset, it is chosen by whether
 * stdout is a terminal. The services run alone (Compose) always write JSON lines.
 */
export function loadLogFormat(env: NodeJS.ProcessEnv = process.env): 'json' | 'pretty' | undefined {
  return parseEnv(z.object({ NONDIVY_LOG_FORMAT: z.enum(['json', 'pretty']).optional() }), env).NONDIVY_LOG_FORMAT;
}

/** Variables of the services that open the blob store (gateway, FTP). */
const blobVars = {
  NONDIVY_BLOB_DRIVER: z.enum(['fs', 's3']).default('fs'),
  S3_ENDPOINT: z.url({ protocol: /^https?$/, message: 'expected http(s)://host:port' }).optional(),
  S3_ACCESS_KEY: z.string().optional(),
  S3_SECRET_KEY: z.string().optional(),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)')
    .default('nondivy'),
  S3_REGION: z.string().default('us-east-1'),
  NONDIVY_S3_PART_SIZE: byteSize.default(8 * 1024 * 1024).refine((n) => n >= 5 * 1024 * 1024 && n <= 512 * 1024 * 1024, 'must be between 5MiB and 512MiB'),
  NONDIVY_MAX_UPLOAD_BYTES: byteSize.default(64 * 1024 ** 3).refine((n) => n > 0, 'must be positive'),
};

/** Variables of the front doors that take uploads and logins (gateway, FTP). */
const doorVars = {
  NONDIVY_UPLOAD_LEASE_SECONDS: positiveInt.default(30),
  NONDIVY_UPLOAD_EXPIRY_SECONDS: positiveInt.default(24 * 3600),
  NONDIVY_UPLOAD_MAX_UNFINISHED: positiveInt.default(100),
  NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: byteSize.default(64 * 1024 ** 3).refine((n) => n > 0, 'must be positive'),
  NONDIVY_LOGIN_MAX_FAILURES: positiveInt.default(10),
  NONDIVY_LOGIN_LOCK_SECONDS: positiveInt.default(15 * 60),
};

/** Variables of device sharing (gateway and discovery). */
const sharingVars = {
  NONDIVY_PRESENCE_TTL_SECONDS: positiveInt.default(12),
  NONDIVY_OFFER_TTL_SECONDS: positiveInt.default(600),
};

const gatewayVars = {
  ...commonVars,
  ...blobVars,
  ...doorVars,
  ...sharingVars,
  NONDIVY_GUEST_SHARING: flag.default(false),
  NONDIVY_FEDERATION_TIMEOUT_MS: positiveInt.default(1500),
  NONDIVY_INVITE_TTL_SECONDS: positiveInt.default(3600),
  NONDIVY_FEDERATION_CLOCK_SKEW_SECONDS: positiveInt.default(60),
  NONDIVY_RELAY_WAIT_SECONDS: positiveInt.default(60),
  NONDIVY_OFFERS_PENDING_PER_RECEIVER: positiveInt.default(20),
  NONDIVY_OFFERS_PENDING_PER_SENDER: positiveInt.default(10),
  NONDIVY_OFFER_MAX_FILES: positiveInt.max(1000).default(500),
  NONDIVY_OFFER_MAX_BYTES: positiveInt.default(64 * 1024),
  NONDIVY_HTTP_HOST: z.string().default('0.0.0.0'),
  NONDIVY_HTTP_PORT: port.default(8080),
  NONDIVY_ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  NONDIVY_GUEST_UPLOAD: flag.default(false),
  NONDIVY_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  NONDIVY_SESSION_TTL_HOURS: positiveInt.default(24 * 30),
  NONDIVY_CATALOG_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8081'),
  NONDIVY_HTTP_BODY_TIMEOUT_SECONDS: positiveInt.default(10),
  NONDIVY_HTTP_PROGRESS_TIMEOUT_SECONDS: positiveInt.default(30),
  NONDIVY_HTTP_PROGRESS_MIN_BYTES: byteSize.default(64 * 1024).refine((n) => n > 0, 'must be positive'),
  NONDIVY_HTTP_MAX_CONNECTIONS_PER_IP: positiveInt.default(64),
};

const catalogVars = {
  ...commonVars,
  ...blobVars,
  /** Internal: loopback unless a deployment (Compose) opens it to its private network. */
  NONDIVY_CATALOG_HOST: z.string().default('127.0.0.1'),
  NONDIVY_CATALOG_PORT: port.default(8081),
};

const ftpVars = {
  ...commonVars,
  ...blobVars,
  ...doorVars,
  NONDIVY_FTP_HOST: z.string().default('0.0.0.0'),
  NONDIVY_FTP_PORT: port.default(2121),
  NONDIVY_FTP_PASV_RANGE: portRange.default([30000, 30049]),
  NONDIVY_FTP_PASV_ADDRESS: z.ipv4({ message: 'expected the IPv4 address clients reach this server at' }).optional(),
  NONDIVY_FTP_TLS_CERT: z.string().optional(),
  NONDIVY_FTP_TLS_KEY: z.string().optional(),
  NONDIVY_FTP_TLS_REQUIRED: flag.default(false),
  NONDIVY_FTP_MAX_CONNECTIONS: positiveInt.default(200),
  NONDIVY_FTP_MAX_CONNECTIONS_PER_IP: positiveInt.default(16),
  NONDIVY_FTP_IDLE_SECONDS: positiveInt.default(300),
  NONDIVY_FTP_DATA_TIMEOUT_SECONDS: positiveInt.default(60),
  /** Default: a quarter of the passive range (at least one), so no single address can take it all. */
  NONDIVY_FTP_PASV_PER_IP: positiveInt.optional(),
  NONDIVY_FTP_PASV_TIMEOUT_SECONDS: positiveInt.default(10),
};

/** `eth0,wlan0`: network interface names (Linux allows 15 characters). */
const interfaceList = z
  .string()
  .transform((v) => v.split(',').map((n) => n.trim()).filter((n) => n !== ''))
  .pipe(z.array(z.string().regex(/^[\w.:@-]{1,15}$/, 'expected interface names such as eth0,wlan0')).min(1, 'expected interface names such as eth0,wlan0'));

const discoveryVars = {
  ...commonVars,
  ...sharingVars,
  /** Health and metrics only: loopback unless a deployment opens it. */
  NONDIVY_DISCOVERY_HOST: z.string().default('127.0.0.1'),
  NONDIVY_DISCOVERY_PORT: port.default(8082),
  NONDIVY_ANNOUNCE: flag.default(false),
  /** Interfaces to announce on (comma list); default: the host's LAN interfaces, virtual ones left out. */
  NONDIVY_ANNOUNCE_INTERFACES: interfaceList.optional(),
  /** The gateway's port, announced on the LAN. */
  NONDIVY_HTTP_PORT: port.default(8080),
  NONDIVY_FTP_PORT: port.default(2121),
  NONDIVY_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
};

export type LogLevel = z.infer<typeof logLevel>;

export interface RedisConfig {
  /** Undefined in standalone mode means "start an embedded redis-server". */
  url?: string;
}

export type BlobConfig =
  | { driver: 'fs'; root: string }
  | { driver: 's3'; endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string; partSize: number };

export interface GatewayConfig {
  logLevel: LogLevel;
  siteName: string;
  dataDir: string;
  redis: RedisConfig;
  blobs: BlobConfig;
  http: { host: string; port: number; publicUrl?: string; limits: HttpClientLimits };
  library: { maxUploadBytes: number; guestUpload: boolean; uploadLeaseSeconds: number };
  uploads: ResumableUploadLimits;
  auth: { adminPassword?: string; sessionTtlSeconds: number; maxLoginFailures: number; lockSeconds: number };
  catalogUrl: string;
  sharing: SharingConfig & { guestSharing: boolean; relayWaitMs: number; offers: OfferLimits };
  federation: { timeoutMs: number; inviteTtlMs: number; clockSkewMs: number };
}

/** Resumable (tus) uploads: how long an unfinished one lives, and how many one user may have. */
export interface ResumableUploadLimits {
  /** An unfinished upload that receives no bytes for this long is swept with its staged bytes. */
  expirySeconds: number;
  /** Unfinished uploads one user (or all guests together) may have; the next is refused (429). */
  maxUnfinished: number;
  /** Total announced length of one user's unfinished uploads; past it, a new one is refused (413). */
  maxUnfinishedBytes: number;
}

/** How long the gateway waits for slow clients, and how many connections one address may hold. */
export interface HttpClientLimits {
  /** Request headers, and bodies that are not uploads or relayed files, must arrive within this time. */
  bodyTimeoutMs: number;
  /** An upload or relayed file must deliver `progressMinBytes` per window of this length… */
  progressWindowMs: number;
  /** …counting only the time the gateway is waiting for its bytes. */
  progressMinBytes: number;
  /** Open connections from one client address; more are answered 429 and closed. */
  maxConnectionsPerIp: number;
}

/** Bounds on offers, so that no device can flood another's inbox (or the gateway's memory). */
export interface OfferLimits {
  /** Open (not yet answered) offers one device may have received. */
  maxPendingPerReceiver: number;
  /** Open offers one device may have sent. */
  maxPendingPerSender: number;
  /** Files in one offer. */
  maxFiles: number;
  /** Bytes of one offer's file list (names, sizes, hashes) as JSON. */
  maxBytes: number;
}

export interface SharingConfig {
  /** A device is online for this long after its last heartbeat. */
  presenceTtlMs: number;
  /** An offer not accepted within this time expires. */
  offerTtlMs: number;
}

export interface CatalogConfig {
  logLevel: LogLevel;
  siteName: string;
  dataDir: string;
  redis: RedisConfig;
  /** The catalog reads items' bytes to extract their metadata. */
  blobs: BlobConfig;
  http: { host: string; port: number };
}

export interface FtpConfig {
  logLevel: LogLevel;
  siteName: string;
  dataDir: string;
  redis: RedisConfig;
  blobs: BlobConfig;
  ftp: {
    host: string;
    port: number;
    pasvMin: number;
    pasvMax: number;
    /** The address announced in PASV replies; default: the address the client connected to. */
    pasvAddress?: string;
    /** Files of the certificate chain and private key (PEM): explicit FTPS (AUTH TLS) when set. */
    tls?: { certFile: string; keyFile: string };
    /** Refuse USER/PASS before AUTH TLS. */
    tlsRequired: boolean;
    maxConnections: number;
    maxConnectionsPerIp: number;
    idleMs: number;
    dataTimeoutMs: number;
    /** Most passive listeners waiting for a data connection from one client address at once. */
    pasvPerIp: number;
    /** A passive listener no data connection reached within this time is closed and its port freed. */
    pasvTimeoutMs: number;
  };
  library: { maxUploadBytes: number; uploadLeaseSeconds: number };
  /** Interrupted STORs are kept as resumable uploads, under the same limits as the gateway's. */
  uploads: ResumableUploadLimits;
  auth: { maxLoginFailures: number; lockSeconds: number };
}

const absolute = (dir: string) => (isAbsolute(dir) ? dir : resolve(process.cwd(), dir));

/** The settings every service has, from the variables every service reads. */
function common(e: { LOG_LEVEL: LogLevel; NONDIVY_SITE_NAME: string; NONDIVY_DATA_DIR: string; REDIS_URL?: string }) {
  return { logLevel: e.LOG_LEVEL, siteName: e.NONDIVY_SITE_NAME, dataDir: absolute(e.NONDIVY_DATA_DIR), redis: { url: e.REDIS_URL } };
}

/** S3 settings are required together, and only with the s3 driver. */
const requireS3 = (raw: Record<string, string | undefined>): string[] =>
  raw.NONDIVY_BLOB_DRIVER !== 's3'
    ? []
    : ['S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY'].filter((n) => !raw[n]).map((n) => `${n}: required when NONDIVY_BLOB_DRIVER=s3`);

function blobConfig(env: z.infer<z.ZodObject<typeof blobVars>>, dataDir: string): BlobConfig {
  if (env.NONDIVY_BLOB_DRIVER === 'fs') return { driver: 'fs', root: resolve(dataDir, 'blobs') };
  return {
    driver: 's3',
    endpoint: env.S3_ENDPOINT ?? '',
    accessKey: env.S3_ACCESS_KEY ?? '',
    secretKey: env.S3_SECRET_KEY ?? '',
    bucket: env.S3_BUCKET,
    region: env.S3_REGION,
    partSize: env.NONDIVY_S3_PART_SIZE,
  };
}

/** The gateway's configuration, validated once at start-up. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const e = parseEnv(z.object(gatewayVars), env, requireS3);
  const base = common(e);
  const blobs = blobConfig(e, base.dataDir);
  return {
    ...base,
    blobs,
    http: {
      host: e.NONDIVY_HTTP_HOST,
      port: e.NONDIVY_HTTP_PORT,
      publicUrl: e.NONDIVY_PUBLIC_URL,
      limits: {
        bodyTimeoutMs: e.NONDIVY_HTTP_BODY_TIMEOUT_SECONDS * 1000,
        progressWindowMs: e.NONDIVY_HTTP_PROGRESS_TIMEOUT_SECONDS * 1000,
        progressMinBytes: e.NONDIVY_HTTP_PROGRESS_MIN_BYTES,
        maxConnectionsPerIp: e.NONDIVY_HTTP_MAX_CONNECTIONS_PER_IP,
      },
    },
    library: { maxUploadBytes: e.NONDIVY_MAX_UPLOAD_BYTES, guestUpload: e.NONDIVY_GUEST_UPLOAD, uploadLeaseSeconds: e.NONDIVY_UPLOAD_LEASE_SECONDS },
    uploads: {
      expirySeconds: e.NONDIVY_UPLOAD_EXPIRY_SECONDS,
      maxUnfinished: e.NONDIVY_UPLOAD_MAX_UNFINISHED,
      maxUnfinishedBytes: e.NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES,
    },
    auth: {
      adminPassword: e.NONDIVY_ADMIN_PASSWORD,
      sessionTtlSeconds: e.NONDIVY_SESSION_TTL_HOURS * 3600,
      maxLoginFailures: e.NONDIVY_LOGIN_MAX_FAILURES,
      lockSeconds: e.NONDIVY_LOGIN_LOCK_SECONDS,
    },
    catalogUrl: e.NONDIVY_CATALOG_URL,
    sharing: {
      presenceTtlMs: e.NONDIVY_PRESENCE_TTL_SECONDS * 1000,
      offerTtlMs: e.NONDIVY_OFFER_TTL_SECONDS * 1000,
      guestSharing: e.NONDIVY_GUEST_SHARING,
      relayWaitMs: e.NONDIVY_RELAY_WAIT_SECONDS * 1000,
      offers: {
        maxPendingPerReceiver: e.NONDIVY_OFFERS_PENDING_PER_RECEIVER,
        maxPendingPerSender: e.NONDIVY_OFFERS_PENDING_PER_SENDER,
        maxFiles: e.NONDIVY_OFFER_MAX_FILES,
        maxBytes: e.NONDIVY_OFFER_MAX_BYTES,
      },
    },
    federation: {
      timeoutMs: e.NONDIVY_FEDERATION_TIMEOUT_MS,
      inviteTtlMs: e.NONDIVY_INVITE_TTL_SECONDS * 1000,
      clockSkewMs: e.NONDIVY_FEDERATION_CLOCK_SKEW_SECONDS * 1000,
    },
  };
}

/** The catalog service's configuration, validated once at start-up. */
export function loadCatalogConfig(env: NodeJS.ProcessEnv = process.env): CatalogConfig {
  const e = parseEnv(z.object(catalogVars), env, requireS3);
  const base = common(e);
  return {
    ...base,
    blobs: blobConfig(e, base.dataDir),
    http: { host: e.NONDIVY_CATALOG_HOST, port: e.NONDIVY_CATALOG_PORT },
  };
}

/** TLS needs both files; requiring TLS needs TLS. */
const checkFtpTls = (raw: Record<string, string | undefined>): string[] => {
  const problems: string[] = [];
  if (!!raw.NONDIVY_FTP_TLS_CERT !== !!raw.NONDIVY_FTP_TLS_KEY) problems.push('NONDIVY_FTP_TLS_CERT and NONDIVY_FTP_TLS_KEY: set both or neither');
  if (/^(1|true|yes|on)$/i.test(raw.NONDIVY_FTP_TLS_REQUIRED ?? '') && !raw.NONDIVY_FTP_TLS_CERT) problems.push('NONDIVY_FTP_TLS_REQUIRED: needs NONDIVY_FTP_TLS_CERT and NONDIVY_FTP_TLS_KEY');
  return problems;
};

/** The FTP service's configuration, validated once at start-up. */
export function loadFtpConfig(env: NodeJS.ProcessEnv = process.env): FtpConfig {
  const e = parseEnv(z.object(ftpVars), env, (raw) => [...requireS3(raw), ...checkFtpTls(raw)]);
  const base = common(e);
  const [pasvMin, pasvMax] = e.NONDIVY_FTP_PASV_RANGE;
  return {
    ...base,
    blobs: blobConfig(e, base.dataDir),
    ftp: {
      host: e.NONDIVY_FTP_HOST,
      port: e.NONDIVY_FTP_PORT,
      pasvMin,
      pasvMax,
      pasvAddress: e.NONDIVY_FTP_PASV_ADDRESS,
      tls: e.NONDIVY_FTP_TLS_CERT && e.NONDIVY_FTP_TLS_KEY ? { certFile: absolute(e.NONDIVY_FTP_TLS_CERT), keyFile: absolute(e.NONDIVY_FTP_TLS_KEY) } : undefined,
      tlsRequired: e.NONDIVY_FTP_TLS_REQUIRED,
      maxConnections: e.NONDIVY_FTP_MAX_CONNECTIONS,
      maxConnectionsPerIp: e.NONDIVY_FTP_MAX_CONNECTIONS_PER_IP,
      idleMs: e.NONDIVY_FTP_IDLE_SECONDS * 1000,
      dataTimeoutMs: e.NONDIVY_FTP_DATA_TIMEOUT_SECONDS * 1000,
      pasvPerIp: Math.min(e.NONDIVY_FTP_PASV_PER_IP ?? Math.max(1, Math.floor((pasvMax - pasvMin + 1) / 4)), pasvMax - pasvMin + 1),
      pasvTimeoutMs: e.NONDIVY_FTP_PASV_TIMEOUT_SECONDS * 1000,
    },
    library: { maxUploadBytes: e.NONDIVY_MAX_UPLOAD_BYTES, uploadLeaseSeconds: e.NONDIVY_UPLOAD_LEASE_SECONDS },
    uploads: {
      expirySeconds: e.NONDIVY_UPLOAD_EXPIRY_SECONDS,
      maxUnfinished: e.NONDIVY_UPLOAD_MAX_UNFINISHED,
      maxUnfinishedBytes: e.NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES,
    },
    auth: { maxLoginFailures: e.NONDIVY_LOGIN_MAX_FAILURES, lockSeconds: e.NONDIVY_LOGIN_LOCK_SECONDS },
  };
}

export interface DiscoveryConfig {
  logLevel: LogLevel;
  siteName: string;
  dataDir: string;
  redis: RedisConfig;
  http: { host: string; port: number };
  sharing: SharingConfig;
  /** `interfaces`: the explicit list (NONDIVY_ANNOUNCE_INTERFACES); undefined: the LAN interfaces. */
  announce: { enabled: boolean; httpPort: number; ftpPort: number; publicUrl?: string; interfaces?: string[] };
}

/** The discovery service's configuration, validated once at start-up. */
export function loadDiscoveryConfig(env: NodeJS.ProcessEnv = process.env): DiscoveryConfig {
  const e = parseEnv(z.object(discoveryVars), env);
  return {
    ...common(e),
    http: { host: e.NONDIVY_DISCOVERY_HOST, port: e.NONDIVY_DISCOVERY_PORT },
    sharing: { presenceTtlMs: e.NONDIVY_PRESENCE_TTL_SECONDS * 1000, offerTtlMs: e.NONDIVY_OFFER_TTL_SECONDS * 1000 },
    announce: { enabled: e.NONDIVY_ANNOUNCE, httpPort: e.NONDIVY_HTTP_PORT, ftpPort: e.NONDIVY_FTP_PORT, publicUrl: e.NONDIVY_PUBLIC_URL, interfaces: e.NONDIVY_ANNOUNCE_INTERFACES },
  };
}
