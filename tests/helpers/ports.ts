import { freeLoopbackPort } from '@nondivy/runtime';

/** A free TCP port on the loopback interface, for a process a test (or a benchmark) starts. */
export const freePort = freeLoopbackPort;
