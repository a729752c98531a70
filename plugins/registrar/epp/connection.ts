import tls from 'node:tls';
import { frame, FrameError, FrameReader } from './framing';
import { all, attr, first, parseXml, text, type XNode } from './xml';

/** The connection broke, or never came up: the command may or may not have reached the registry. */
export class EppConnectionError extends Error {
  constructor(
    message: string,
    readonly kind: 'connect' | 'closed' | 'timeout' | 'protocol',
  ) {
    super(message);
    this.name = 'EppConnectionError';
  }
}

export interface Greeting {
  svID: string;
  svDate: string;
  versions: string[];
  langs: string[];
  objURIs: string[];
  extURIs: string[];
}

export interface EppResponse {
  code: number;
  message: string;
  /** The registry's explanation beyond msg (extValue/reason), if any. */
  reason?: string;
  resData?: XNode;
  clTRID?: string;
  svTRID?: string;
  raw: string;
}

export interface ConnectOptions {
  host: string;
  port: number;
  tls: tls.ConnectionOptions;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  maxFrameBytes: number;
}

/** The <epp> element (xml2js gives the root element itself, not a list). */
function eppOf(root: Record<string, unknown>): XNode | undefined {
  const epp = root.epp as XNode | XNode[] | undefined;
  return Array.isArray(epp) ? epp[0] : epp;
}

export function readGreeting(root: Record<string, unknown>): Greeting | null {
  const epp = eppOf(root);
  const g = first(epp, 'greeting');
  if (!g) return null;
  const menu = first(g, 'svcMenu');
  return {
    svID: text(first(g, 'svID')),
    svDate: text(first(g, 'svDate')),
    versions: all(menu, 'version').map(text),
    langs: all(menu, 'lang').map(text),
    objURIs: all(menu, 'objURI').map(text),
    extURIs: all(first(menu, 'svcExtension'), 'extURI').map(text),
  };
}

export function readResponse(root: Record<string, unknown>, raw: string): EppResponse | null {
  const epp = eppOf(root);
  const r = first(epp, 'response');
  if (!r) return null;
  const result = first(r, 'result');
  const code = Number(attr(result, 'code'));
  if (!Number.isInteger(code)) return null;
  const ext = first(result, 'extValue');
  const reason = text(first(ext, 'reason')) || undefined;
  return {
    code,
    message: text(first(result, 'msg')),
    reason,
    resData: first(r, 'resData'),
    clTRID: text(first(r, 'trID', 'clTRID')) || undefined,
    svTRID: text(first(r, 'trID', 'svTRID')) || undefined,
    raw,
  };
}

/**
 * One TLS connection to an EPP server, carrying one command at a time: `exchange` sends a frame and waits for
 * the answering frame. Any trouble (close, timeout, a bad frame) ends the connection for good.
 */
export class EppConnection {
  private readonly reader: FrameReader;
  private waiter: { resolve(xml: string): void; reject(e: Error): void } | null = null;
  private readonly frames: string[] = [];
  private failure: EppConnectionError | null = null;
  lastUsed = Date.now();

  private constructor(
    private readonly socket: tls.TLSSocket,
    private readonly options: ConnectOptions,
  ) {
    this.reader = new FrameReader(options.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => {
      let got: string[];
      try {
        got = this.reader.push(chunk);
      } catch (e) {
        this.fail(new EppConnectionError(`The EPP server sent a bad frame: ${(e as FrameError).message}`, 'protocol'));
        return;
      }
      for (const f of got) {
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = null;
          w.resolve(f);
        } else this.frames.push(f);
      }
    });
    socket.on('error', (e) => this.fail(new EppConnectionError(`The connection to the EPP server failed: ${e.message}`, 'closed')));
    socket.on('close', () => this.fail(new EppConnectionError('The EPP server closed the connection.', 'closed')));
  }

  /** Connects over TLS and reads the greeting. */
  static async open(options: ConnectOptions): Promise<{ connection: EppConnection; greeting: Greeting }> {
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: options.host, port: options.port, servername: options.tls.servername ?? (isIp(options.host) ? undefined : options.host), ...options.tls });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new EppConnectionError(`No TLS connection to ${options.host}:${options.port} within ${options.connectTimeoutMs} ms.`, 'connect'));
      }, options.connectTimeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new EppConnectionError(`Could not connect to the EPP server ${options.host}:${options.port}: ${e.message}`, 'connect'));
      });
    });
    const connection = new EppConnection(socket, options);
    const xml = await connection.receive(options.connectTimeoutMs);
    const greeting = readGreeting(await connection.parse(xml));
    if (!greeting) {
      connection.close();
      throw new EppConnectionError('The EPP server did not open with a greeting.', 'protocol');
    }
    return { connection, greeting };
  }

  get alive(): boolean {
    return this.failure === null;
  }

  /** Sends one EPP document and answers the parsed response (or greeting, for hello). */
  async exchange(xml: string): Promise<{ root: Record<string, unknown>; raw: string }> {
    if (this.failure) throw this.failure;
    if (this.waiter) throw new EppConnectionError('The EPP connection is already waiting for an answer (one command at a time).', 'protocol');
    this.lastUsed = Date.now();
    // A frame nobody asked for (a server's parting 2500) must not be taken for this command's answer.
    this.frames.length = 0;
    this.socket.write(frame(xml));
    const raw = await this.receive(this.options.commandTimeoutMs);
    this.lastUsed = Date.now();
    return { root: await this.parse(raw), raw };
  }

  close(): void {
    this.fail(new EppConnectionError('The EPP connection was closed.', 'closed'));
  }

  private async parse(xml: string): Promise<Record<string, unknown>> {
    try {
      return await parseXml(xml);
    } catch (e) {
      this.fail(new EppConnectionError((e as Error).message, 'protocol'));
      throw this.failure as EppConnectionError;
    }
  }

  private receive(timeoutMs: number): Promise<string> {
    if (this.frames.length) return Promise.resolve(this.frames.shift() as string);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new EppConnectionError(`The EPP server did not answer within ${timeoutMs} ms.`, 'timeout'));
      }, timeoutMs);
      this.waiter = {
        resolve: (x) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private fail(e: EppConnectionError): void {
    if (!this.failure) this.failure = e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(this.failure);
    }
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
