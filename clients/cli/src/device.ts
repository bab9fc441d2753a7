import { DeviceName, RegisterDeviceResponse, type Device } from '@nondivy/contracts';
import type { Api } from './api.js';
import { messageOf, UsageError } from './errors.js';
import type { Output } from './output.js';

const CLEANUP_TIMEOUT_MS = 3000;

/**
 * This CLI as a registered device: registered at start, heartbeating while it runs, unregistered
 * on the way out (also after SIGINT/SIGTERM: callers close it in a `finally`).
 */
export class DeviceSession {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failing = false;

  private constructor(
    private readonly api: Api,
    private readonly out: Output,
    readonly device: Device,
    /** Sent as X-Device-Token on device-scoped calls. */
    readonly token: string,
    readonly heartbeatMs: number,
  ) {}

  /** Registers the device (with the user's login token) and starts its heartbeat. */
  static async register(api: Api, out: Output, name: string, directUrl?: string): Promise<DeviceSession> {
    const valid = DeviceName.safeParse(name);
    if (!valid.success) throw new UsageError(`not a usable device name: ${JSON.stringify(name)} (1-64 characters, no control characters)`);
    const answer = await api.call(RegisterDeviceResponse, 'POST', '/devices', { json: directUrl ? { name: valid.data, directUrl } : { name: valid.data } });
    const session = new DeviceSession(api, out, answer.device, answer.token, answer.heartbeatMs);
    session.schedule();
    return session;
  }

  get id(): string {
    return this.device.id;
  }

  private schedule() {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.beat(), this.heartbeatMs);
    this.timer.unref();
  }

  private async beat() {
    try {
      await this.api.send('PUT', `/devices/${this.id}/heartbeat`, { deviceToken: this.token, timeoutMs: this.heartbeatMs });
      if (this.failing) this.out.warn('heartbeat works again');
      this.failing = false;
    } catch (err) {
      if (this.closed) return;
      if (!this.failing) this.out.warn(`heartbeat failed: ${messageOf(err)}`);
      this.failing = true;
    }
    this.schedule();
  }

  /** Stops the heartbeat and unregisters (errors ignored: the server forgets silent devices anyway). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.api
      .send('DELETE', `/devices/${this.id}`, { deviceToken: this.token, cleanup: true, timeoutMs: CLEANUP_TIMEOUT_MS })
      .catch(() => undefined);
  }
}
