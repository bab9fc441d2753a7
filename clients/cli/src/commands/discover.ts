import { intOption } from '../args.js';
import { defineCommand } from '../command.js';
import { discoverServers } from '../discover.js';
import { printable } from '../format.js';

export const discoverCommand = defineCommand({
  name: 'discover',
  summary: 'Find Nondivy sites on the LAN (mDNS/DNS-SD _nondivy._tcp).',
  usage: `Usage: nondivy discover [--timeout MS]

  --timeout MS    how long to listen for answers (default 2000)`,
  examples: [
    'nondivy discover # the sites announcing themselves on the LAN',
    'nondivy discover --timeout 5000 --json',
  ],
  options: { timeout: { type: 'string' } },
  async run({ values }, ctx) {
    const timeoutMs = intOption('timeout', values.timeout, 2000, 100, 600_000);
    const servers = await discoverServers(timeoutMs, ctx.signal);
    if (ctx.json) {
      ctx.out.data({ servers });
      return;
    }
    if (servers.length === 0) {
      ctx.out.line(`no Nondivy site answered within ${timeoutMs} ms`);
      return;
    }
    for (const s of servers) {
      ctx.out.line(printable(s.name));
      ctx.out.line(`  api:       ${printable(s.api)}`);
      ctx.out.line(`  site id:   ${printable(s.siteId ?? '-')}`);
      ctx.out.line(`  ftp port:  ${s.ftpPort ?? '-'}`);
      ctx.out.line(`  version:   ${printable(s.version ?? '-')}`);
      ctx.out.line(`  host:      ${[s.host, ...s.addresses].map(printable).join(' ')} port ${s.port}`);
    }
  },
});
