export * from './signing.js';
export * from './invite.js';
