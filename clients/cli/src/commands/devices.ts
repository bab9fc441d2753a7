import { defineCommand } from '../command.js';
import { formatAgo, table } from '../format.js';
import { DeviceList } from '../schemas.js';

export const devicesCommand = defineCommand({
  name: 'devices',
  summary: 'List the devices online (those you can send files to).',
  usage: `Usage: nondivy devices [--all]

  --all   include the devices of linked sites`,
  examples: [
    'nondivy devices # the devices online at this site',
    'nondivy devices --all # and those of linked sites (send to them as NAME@SITE)',
  ],
  options: { all: { type: 'boolean' } },
  async run({ values }, ctx) {
    const api = await ctx.api({ login: 'optional' });
    const list = await api.call(DeviceList, 'GET', '/devices', { query: { scope: values.all ? 'federated' : undefined } });
    if (ctx.json) {
      ctx.out.data(list);
      return;
    }
    if (list.devices.length === 0) {
      ctx.out.line('no device online');
      return;
    }
    const withSite = list.devices.some((d) => d.site);
    const rows = list.devices.map((d) => {
      const row = [d.name, d.owner, formatAgo(d.since), d.id];
      return withSite ? [...row, d.site ?? ''] : row;
    });
    ctx.out.line(table(withSite ? ['NAME', 'OWNER', 'SINCE', 'ID', 'SITE'] : ['NAME', 'OWNER', 'SINCE', 'ID'], rows));
  },
});
