export * from './library.js';
export * from './auth.js';
export * from './problem.js';
export * from './events.js';
export * from './stored.js';
