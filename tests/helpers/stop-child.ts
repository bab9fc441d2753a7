import type { ChildProcess } from 'node:child_process';

/**
 * Ends a child the way an operator would (SIGTERM) and waits for its exit, so that a test's next
 * step never races a process still holding ports or files. With `killAfterMs`, one that does not
 * go is SIGKILLed then. A child that has already exited is left as it is.
 */
export async function stopChild(child: ChildProcess, killAfterMs?: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const killer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(killer);
}
