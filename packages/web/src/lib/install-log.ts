/**
 * The install tab's log, folded from live messages. Output lines may arrive after the install's
 * end (the Panel batches console-like frames, the end goes at once), so output never clears a
 * result: only a new install does (the page resets the log when it starts one, and the status is
 * `installing` meanwhile, which the tab shows first).
 */
import { stripAnsi } from './series.ts';

export interface InstallLog {
  lines: string[];
  /** null while running or before any install was seen */
  result: { success: boolean; exitCode?: number } | null;
  /** an error the Panel relayed for the reinstall request (e.g. the Agent refused it) */
  error: { code: string; message: string } | null;
}

export const EMPTY_INSTALL_LOG: InstallLog = { lines: [], result: null, error: null };
/** the panel keeps the tail; the console tab has it all */
export const INSTALL_LOG_MAX_LINES = 2000;

export function withInstallOutput(s: InstallLog, lines: string[]): InstallLog {
  return { ...s, lines: [...s.lines, ...lines.map(stripAnsi)].slice(-INSTALL_LOG_MAX_LINES) };
}

export function withInstallResult(s: InstallLog, success: boolean, exitCode?: number): InstallLog {
  return { ...s, result: { success, ...(exitCode === undefined ? {} : { exitCode }) } };
}
