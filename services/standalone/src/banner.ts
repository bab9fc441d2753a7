import { escapeForTerminal } from '@nondivy/log';
import { qrLines } from './qr.js';

export interface BannerFacts {
  siteName: string;
  /** Where people open the site: the public URL, else each LAN address. */
  urls: string[];
  ftpUrl: string;
  dataDir: string;
  /** The admin's generated password, on the start that created the account only. */
  oneTimePassword?: string;
}

const BOLD = '\x1b[1m';
const RESET = '\x1b[0m';

/**
 * What a person who just ran `npm start` on a terminal needs: where to open the site (with a QR code
 * of the first address for phones), the FTP address, the API docs and, on the first start only, the
 * admin password. Machines get the JSON "is ready" line instead.
 */
export function banner(facts: BannerFacts): string {
  const [first, ...others] = facts.urls;
  const lines = [
    '',
    `${BOLD}Nondivy "${escapeForTerminal(facts.siteName)}" is ready${RESET}`,
    '',
    `  Open on this network:  ${first}`,
    ...others.map((url) => `                         ${url}`),
    '',
    ...qrLines(first!).map((l) => `  ${l}`),
    '',
    `  FTP:        ${facts.ftpUrl}`,
    `  API docs:   ${first}/docs`,
    `  Data:       ${escapeForTerminal(facts.dataDir)}`,
  ];
  if (facts.oneTimePassword) {
    lines.push(
      '',
      `  ${BOLD}Admin account created.${RESET} Log in as:  admin  /  ${BOLD}${facts.oneTimePassword}${RESET}`,
      '  This password is shown only this once: note it now. Change it after logging in (see the',
      '  API docs), or set NONDIVY_ADMIN_PASSWORD=<your own> and restart.',
    );
  }
  lines.push('', '  Stop with Ctrl+C. Log lines follow.', '');
  return lines.join('\n') + '\n';
}

/**
 * The FTP address to tell people: NONDIVY_FTP_PASV_ADDRESS when set (that is the address FTP clients
 * are told to use), else — FTP listening on every interface — the host of the site's first address,
 * else the one address FTP listens on.
 */
export function ftpUrl(ftp: { host: string; pasvAddress?: string }, port: number, siteUrl: string): string {
  const host = ftp.pasvAddress ?? (ftp.host === '0.0.0.0' || ftp.host === '::' ? new URL(siteUrl).hostname : ftp.host);
  return `ftp://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}
