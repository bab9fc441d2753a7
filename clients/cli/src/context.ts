import { hostname } from 'node:os';
import { Api } from './api.js';
import type { CommonValues } from './args.js';
import { loadConfig, normaliseServer, type SavedConfig } from './config.js';
import { discoverServers } from './discover.js';
import { CliError } from './errors.js';
import { Output } from './output.js';
import { progressEnabled } from './progress.js';

const DISCOVER_TIMEOUT_MS = 2000;

/** What every command gets: its output, the interrupt signal, and the way to its server. */
export class Context {
  readonly out: Output;
  readonly json: boolean;
  /** Draw progress bars (stderr is a terminal, no --json). */
  readonly progress: boolean;
  readonly deviceName: string;
  private saved: SavedConfig | null | undefined;

  constructor(
    readonly common: CommonValues,
    /** Aborted with an `Interrupted` on SIGINT/SIGTERM. */
    readonly signal: AbortSignal,
    /** The repository the CLI runs from (for `nondivy start`). */
    readonly repoRoot: string,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.json = common.json === true;
    this.out = new Output(this.json);
    this.progress = progressEnabled(this.json);
    this.deviceName = (common.device ?? env.NONDIVY_DEVICE ?? hostname()).trim() || 'nondivy';
  }

  async savedConfig(): Promise<SavedConfig | null> {
    if (this.saved === undefined) this.saved = await loadConfig(this.env);
    return this.saved;
  }

  /**
   * The server: --server, NONDIVY_SERVER, the saved one, else the only site found on the LAN.
   */
  async server(): Promise<string> {
    const given = this.common.server ?? this.env.NONDIVY_SERVER;
    if (given) return normaliseServer(given);
    const saved = await this.savedConfig();
    if (saved) return normaliseServer(saved.server);
    const found = await discoverServers(DISCOVER_TIMEOUT_MS, this.signal);
    if (found.length === 0) {
      throw new CliError('no server given and no Nondivy site found on the LAN: pass --server URL (or set NONDIVY_SERVER, or log in once)');
    }
    if (found.length > 1) {
      throw new CliError(`several Nondivy sites found on the LAN (${found.map((s) => `${s.name} at ${s.api}`).join(', ')}): choose one with --server URL`);
    }
    return normaliseServer(found[0]!.api);
  }

  /**
   * The login token: --token, NONDIVY_TOKEN, else the saved one — only for the server it was saved
   * for, so a token never goes to another site.
   */
  async token(server: string): Promise<string | undefined> {
    const given = this.common.token ?? this.env.NONDIVY_TOKEN;
    if (given) return given.trim();
    const saved = await this.savedConfig();
    if (saved && normaliseServer(saved.server) === server) return saved.token;
    return undefined;
  }

  /** The API client for the resolved server (with the login token when there is one). */
  async api(options: { login?: 'optional' | 'required' } = {}): Promise<Api> {
    const server = await this.server();
    const token = await this.token(server);
    if (!token && options.login === 'required') {
      throw new CliError(`not logged in to ${server}: run "nondivy login" (or pass --token, or set NONDIVY_TOKEN)`);
    }
    return new Api(server, token, this.signal);
  }

  /** An API client without any login token (login itself). */
  async anonymousApi(): Promise<Api> {
    return new Api(await this.server(), undefined, this.signal);
  }
}
