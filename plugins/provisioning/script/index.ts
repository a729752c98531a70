import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  failure,
  type Outcome,
  type PluginContext,
  type PluginFactory,
  type ProvisionResult,
  type ProvisioningGate,
  type ServiceRequest,
  type UsageReading,
  outcomeFromReply,
} from '../../../src/plugins/sdk';

/**
 * The script service gate. Per action it runs the configured executable (no shell) with
 * `{"action": "...", "request": {...}}` on stdin and reads one JSON outcome from stdout:
 *   {"status": "success", "result": {...}} | {"status": "failure", "message": "...", "retryable": false}
 *   | {"status": "pending", "message": "...", "retryAfterSeconds": 30}
 * A command past timeoutMs is killed (with its process group): retryable failure. A non-zero exit without a JSON
 * failure on stdout is a failure carrying stderr's last line; exit code 75 (EX_TEMPFAIL) makes it retryable.
 * Credentials travel in the environment (secretEnv), never on a command line; the server's environment is not
 * passed on, only PATH.
 */

export const SCRIPT_ACTIONS = ['provision', 'suspend', 'resume', 'terminate', 'changeLimits', 'readUsage', 'status', 'testConnection'] as const;
type ScriptAction = (typeof SCRIPT_ACTIONS)[number];

const EX_TEMPFAIL = 75;
const MAX_STDOUT = 1024 * 1024;
const MAX_STDERR_KEPT = 16 * 1024;
const MAX_MESSAGE = 500;

interface ScriptSettings {
  commands: Partial<Record<ScriptAction, string>>;
  timeoutMs: number;
  cwd?: string;
  env: Record<string, string>;
  secretEnv: Record<string, string>;
}

/** Splits a command line into argv without a shell: whitespace separates, "..." and '...' group, \ escapes. */
export function splitCommand(command: string): string[] {
  const argv: string[] = [];
  let current = '';
  let quote: '"' | "'" | null = null;
  let started = false;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) current += command[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === '\\' && i + 1 < command.length) {
      current += command[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) argv.push(current);
      current = '';
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (quote) throw new Error(`unclosed ${quote} in the command`);
  if (started) argv.push(current);
  return argv;
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return clip(lines[lines.length - 1] ?? '');
}


/** The outcome a script printed: the whole of stdout as JSON, else its last non-empty line. */
function parseReply(stdout: string): unknown {
  const text = stdout.trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    try {
      return JSON.parse(text.split(/\r?\n/).filter((l) => l.trim()).pop() ?? '');
    } catch {
      return undefined;
    }
  }
}

/** A reply turned into a well-formed outcome for `action`, or a reason it is not one. */
function toOutcome(action: ScriptAction, reply: unknown): Outcome<unknown> | string {
  return outcomeFromReply(action, reply, 'The script');
}

export class ScriptGate implements ProvisioningGate {
  private readonly settings: ScriptSettings;

  constructor(private readonly context: PluginContext) {
    const s = context.settings;
    this.settings = {
      commands: (s.commands as ScriptSettings['commands'] | undefined) ?? {},
      timeoutMs: typeof s.timeoutMs === 'number' ? s.timeoutMs : 30000,
      cwd: typeof s.cwd === 'string' ? s.cwd : undefined,
      env: (s.env as Record<string, string> | undefined) ?? {},
      secretEnv: (s.secretEnv as Record<string, string> | undefined) ?? {},
    };
    for (const [action, command] of Object.entries(this.settings.commands)) {
      if (splitCommand(command).length === 0) throw new Error(`The ${action} command is empty.`);
    }
  }

  provision(req: ServiceRequest): Promise<Outcome<ProvisionResult>> {
    return this.run('provision', req) as Promise<Outcome<ProvisionResult>>;
  }
  suspend(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.run('suspend', req) as Promise<Outcome<Record<string, never>>>;
  }
  resume(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.run('resume', req) as Promise<Outcome<Record<string, never>>>;
  }
  terminate(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.run('terminate', req) as Promise<Outcome<Record<string, never>>>;
  }
  changeLimits(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.run('changeLimits', req) as Promise<Outcome<Record<string, never>>>;
  }
  readUsage(req: ServiceRequest): Promise<Outcome<{ usage: UsageReading[] }>> {
    return this.run('readUsage', req) as Promise<Outcome<{ usage: UsageReading[] }>>;
  }
  status(operationId: string): Promise<Outcome<Record<string, unknown>>> {
    return this.run('status', { operationId }) as Promise<Outcome<Record<string, unknown>>>;
  }

  /** Runs the testConnection command if there is one; otherwise checks that every configured executable can be run. */
  async testConnection(): Promise<Outcome<{ message: string }>> {
    if (this.settings.commands.testConnection) return this.run('testConnection', {}) as Promise<Outcome<{ message: string }>>;
    const problems: string[] = [];
    for (const [action, command] of Object.entries(this.settings.commands)) {
      const problem = this.executableProblem(splitCommand(command)[0]);
      if (problem) problems.push(`${action}: ${problem}`);
    }
    if (problems.length) return failure(`Some commands cannot run: ${problems.join('; ')}`, false, 'NOT_EXECUTABLE');
    return { status: 'success', result: { message: `All ${Object.keys(this.settings.commands).length} command(s) can be run.` } };
  }

  private executableProblem(file: string): string | null {
    const candidates = file.includes('/') ? [path.resolve(this.settings.cwd ?? '.', file)] : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, file));
    for (const candidate of candidates) {
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return null;
      } catch {
        // try the next candidate
      }
    }
    return `${file} is not an executable file`;
  }

  private run(action: ScriptAction, request: ServiceRequest | { operationId: string } | Record<string, never>): Promise<Outcome<unknown>> {
    const command = this.settings.commands[action];
    if (!command) return Promise.resolve(failure(`The script gate '${this.context.instanceName}' has no command for ${action}.`, false, 'NOT_CONFIGURED'));
    const [file, ...args] = splitCommand(command);
    const operationId = 'operationId' in request && typeof request.operationId === 'string' ? request.operationId : '';
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...this.settings.env,
      ...this.settings.secretEnv,
      HOSTWRIGHT_ACTION: action,
      HOSTWRIGHT_OPERATION_ID: operationId,
      HOSTWRIGHT_INSTANCE: this.context.instanceName,
    };
    const started = Date.now();
    return new Promise((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const done = (outcome: Outcome<unknown>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.context.log.debug(`script ${action}: ${outcome.status}`, { operationId, ms: Date.now() - started });
        resolve(outcome);
      };
      let child: ChildProcessWithoutNullStreams;
      try {
        child = spawn(file, args, { cwd: this.settings.cwd, env, stdio: 'pipe', detached: true, shell: false });
      } catch (e) {
        return done(failure(`Cannot run ${file}: ${(e as Error).message}`, false, 'NOT_EXECUTABLE'));
      }
      const kill = () => {
        try {
          // The whole process group: a script's own children must not outlive it.
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      let timedOut = false;
      timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, this.settings.timeoutMs);
      let stdout = '';
      let stderr = '';
      let overflow = false;
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.length > MAX_STDOUT && !overflow) {
          overflow = true;
          kill();
        }
      });
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-MAX_STDERR_KEPT);
      });
      // A script that exits without reading its stdin makes the write fail with EPIPE: its exit says what happened.
      child.stdin.on('error', () => undefined);
      child.on('error', (e) => done(failure(`Cannot run ${file}: ${e.message}`, false, 'NOT_EXECUTABLE')));
      child.on('close', (code, signal) => {
        if (timedOut) return done(failure(`${action} did not finish within ${this.settings.timeoutMs} ms and was stopped.`, true, 'TIMEOUT'));
        if (overflow) return done(failure(`${action} printed more than ${MAX_STDOUT} bytes on stdout.`, false, 'BAD_REPLY'));
        const outcome = toOutcome(action, parseReply(stdout));
        if (code === 0) {
          return done(typeof outcome === 'string' ? failure(`The ${action} command's reply is not an outcome: ${outcome}.`, false, 'BAD_REPLY') : outcome);
        }
        if (typeof outcome !== 'string' && outcome.status === 'failure') return done(outcome);
        if (signal) return done(failure(`The ${action} command was killed by ${signal}.`, true, 'KILLED'));
        const why = lastLine(stderr) || 'no message on stderr';
        done(failure(`The ${action} command exited with code ${code}: ${why}`, code === EX_TEMPFAIL, `EXIT_${code}`));
      });
      child.stdin.end(JSON.stringify({ action, request }));
    });
  }
}

const createScriptGate: PluginFactory<ScriptGate> = (context) => new ScriptGate(context);
export default createScriptGate;
