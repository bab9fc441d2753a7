import { DirectUrl } from '@nondivy/contracts';
import { defineCommand } from '../command.js';
import { UsageError } from '../errors.js';
import { defaultDownloadsDir } from '../downloads-dir.js';
import { Receiver } from '../receive.js';

/** HOST:PORT, [IPv6]:PORT or PORT. */
function parseListen(raw: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(raw) ?? /^()()(\d{1,5})$/.exec(raw);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT (got ${raw})`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export const receiveCommand = defineCommand({
  name: 'receive',
  summary: 'Receive files sent by other devices.',
  usage: `Usage: nondivy receive [--dir DIR] [--yes] [--once] [--listen HOST:PORT] [--advertise-url URL]

  --dir DIR             where received files go (created if missing; default: the Downloads folder,
                        XDG_DOWNLOAD_DIR of ~/.config/user-dirs.dirs, else ~/Downloads)
  --yes                 accept every offer (else asked on the terminal; without one, offers are
                        rejected, and the sender is told to ask for --yes)
  --once                stop after the first transfer (exit 0 if it completed)
  --listen HOST:PORT    the direct endpoint's address (default 0.0.0.0:0: any free port)
  --advertise-url URL   the URL senders use to reach it (default: http://<first LAN IPv4>:<port>,
                        or the --listen host when it is a specific address)

Files are written as .<name>.nondivy-part and get their (sanitised) name only once their size and
SHA-256 match the offer; an existing file is never overwritten ("name (1).ext" instead). With --json,
one JSON line per event: offer, accepted, rejected, received, failed.`,
  examples: [
    'nondivy receive # asks "Accept?" for each offer; files go to ~/Downloads',
    'nondivy receive --dir ~/Inbox --yes --once # accept the next transfer, then stop',
  ],
  options: {
    dir: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
    once: { type: 'boolean' },
    listen: { type: 'string' },
    'advertise-url': { type: 'string' },
  },
  async run({ values, positionals }, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
    const { host, port } = parseListen(values.listen ?? '0.0.0.0:0');
    const advertise = values['advertise-url'];
    if (advertise !== undefined && !DirectUrl.safeParse(advertise).success) throw new UsageError('--advertise-url must be an http:// or https:// URL');
    const api = await ctx.api({ login: 'required' });
    return new Receiver(ctx, api, {
      dir: values.dir ?? (await defaultDownloadsDir(ctx.env)),
      yes: values.yes === true,
      once: values.once === true,
      listenHost: host,
      listenPort: port,
      advertiseUrl: advertise?.replace(/\/+$/, ''),
    }).run();
  },
});
