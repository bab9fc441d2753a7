import { secondsOption } from '../args.js';
import { defineCommand } from '../command.js';
import { UsageError } from '../errors.js';
import { sendFiles } from '../send.js';

export const sendCommand = defineCommand({
  name: 'send',
  summary: 'Send files to another device (directly on the LAN when it can, else through the site).',
  usage: `Usage: nondivy send FILE... --to DEVICE [--timeout S]

  --to DEVICE    the receiving device: its id, its exact name, or DEVICE@SITE (a linked site)
  --timeout S    give up (and withdraw the offer) when it is not answered within S seconds
                 (default: until the offer expires)

Exits 0 once the receiver has confirmed every file (sizes and SHA-256 checked).`,
  examples: [
    'nondivy send photo.jpg notes.pdf --to laptop',
    'nondivy send song.mp3 --to laptop@Riverside # a device of a linked site',
  ],
  options: { to: { type: 'string' }, timeout: { type: 'string' } },
  async run({ values, positionals }, ctx) {
    if (positionals.length === 0) throw new UsageError('send needs at least one FILE');
    if (!values.to) throw new UsageError('send needs --to DEVICE (see "nondivy devices")');
    await sendFiles(ctx, positionals, values.to, secondsOption('timeout', values.timeout, undefined));
  },
});
