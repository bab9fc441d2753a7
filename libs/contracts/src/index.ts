export * from './library.js';
export * from './auth.js';
export * from './problem.js';
export * from './events.js';
export * from './stored.js';
export * from './devices.js';
export * from './federation.js';

/** The version announced on the LAN and to linked sites. */
export const NONDIVY_VERSION = '0.1.0';
export * from './uploads.js';
