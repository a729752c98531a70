import crypto from 'node:crypto';
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
 * The webhook service gate. Every action is one POST of `{"action": "...", "request": {...}}` to the control
 * panel's URL with
 *   X-Hostwright-Timestamp: <unix seconds>
 *   X-Hostwright-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
 * A 2xx JSON reply is the outcome. A timeout, a network error, 408, 429 or 5xx is retried with backoff, then
 * answered as a retryable failure; any other status (4xx, or a 3xx: redirects are not followed) is a permanent one.
 */

type WebhookAction = 'provision' | 'suspend' | 'resume' | 'terminate' | 'changeLimits' | 'readUsage' | 'status' | 'testConnection';

const MAX_REPLY = 1024 * 1024;
const MAX_MESSAGE = 500;

interface WebhookSettings {
  url: string;
  secret: string;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
}

/** The signature header value for a body sent at `timestamp` (unix seconds, as sent in X-Hostwright-Timestamp). */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A reply turned into a well-formed outcome for `action`, or a reason it is not one. */
function toOutcome(action: WebhookAction, reply: unknown): Outcome<unknown> | string {
  return outcomeFromReply(action, reply, 'The control panel');
}

/** Reads at most MAX_REPLY bytes of a response body. */
async function readReply(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_REPLY) {
      await reader.cancel();
      throw new Error(`the reply is larger than ${MAX_REPLY} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class WebhookGate implements ProvisioningGate {
  private readonly settings: WebhookSettings;

  constructor(private readonly context: PluginContext) {
    const s = context.settings;
    if (typeof s.url !== 'string' || typeof s.secret !== 'string') throw new Error('The webhook gate needs a url and a secret.');
    this.settings = {
      url: s.url,
      secret: s.secret,
      timeoutMs: typeof s.timeoutMs === 'number' ? s.timeoutMs : 10000,
      retries: typeof s.retries === 'number' ? s.retries : 2,
      backoffMs: typeof s.backoffMs === 'number' ? s.backoffMs : 500,
    };
  }

  provision(req: ServiceRequest): Promise<Outcome<ProvisionResult>> {
    return this.post('provision', req) as Promise<Outcome<ProvisionResult>>;
  }
  suspend(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.post('suspend', req) as Promise<Outcome<Record<string, never>>>;
  }
  resume(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.post('resume', req) as Promise<Outcome<Record<string, never>>>;
  }
  terminate(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.post('terminate', req) as Promise<Outcome<Record<string, never>>>;
  }
  changeLimits(req: ServiceRequest): Promise<Outcome<Record<string, never>>> {
    return this.post('changeLimits', req) as Promise<Outcome<Record<string, never>>>;
  }
  readUsage(req: ServiceRequest): Promise<Outcome<{ usage: UsageReading[] }>> {
    return this.post('readUsage', req) as Promise<Outcome<{ usage: UsageReading[] }>>;
  }
  status(operationId: string): Promise<Outcome<Record<string, unknown>>> {
    return this.post('status', { operationId }) as Promise<Outcome<Record<string, unknown>>>;
  }
  testConnection(): Promise<Outcome<{ message: string }>> {
    return this.post('testConnection', {}) as Promise<Outcome<{ message: string }>>;
  }

  private async post(action: WebhookAction, request: ServiceRequest | { operationId: string } | Record<string, never>): Promise<Outcome<unknown>> {
    const body = JSON.stringify({ action, request });
    const operationId = 'operationId' in request && typeof request.operationId === 'string' ? request.operationId : '';
    const attempts = this.settings.retries + 1;
    let lastProblem = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await sleep(this.settings.backoffMs * 2 ** (attempt - 2));
      // Signed afresh per attempt: the timestamp says when this very request was sent.
      const timestamp = String(Math.floor(this.context.now().getTime() / 1000));
      let res: Response;
      let text: string;
      try {
        res = await fetch(this.settings.url, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            'User-Agent': 'Hostwright-Webhook-Gate/1.0',
            'X-Hostwright-Timestamp': timestamp,
            'X-Hostwright-Signature': signature(this.settings.secret, timestamp, body),
            ...(operationId ? { 'X-Hostwright-Operation-Id': operationId } : {}),
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.settings.timeoutMs),
        });
        text = await readReply(res);
      } catch (e) {
        const err = e as Error;
        lastProblem = err.name === 'TimeoutError' ? `did not answer within ${this.settings.timeoutMs} ms` : `could not be reached (${(err.cause as Error | undefined)?.message ?? err.message})`;
        this.context.log.warn(`webhook ${action}: attempt ${attempt} of ${attempts} ${lastProblem}`, { operationId });
        continue;
      }
      if (res.status >= 200 && res.status < 300) {
        let reply: unknown;
        try {
          reply = JSON.parse(text);
        } catch {
          reply = undefined;
        }
        const outcome = toOutcome(action, reply);
        if (typeof outcome === 'string') return failure(`The control panel's reply to ${action} is not an outcome: ${outcome}.`, false, 'BAD_REPLY');
        return outcome;
      }
      const said = this.said(text);
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        lastProblem = `answered HTTP ${res.status}${said}`;
        this.context.log.warn(`webhook ${action}: attempt ${attempt} of ${attempts} ${lastProblem}`, { operationId });
        continue;
      }
      return failure(`The control panel refused ${action} with HTTP ${res.status}${said}`, false, `HTTP_${res.status}`);
    }
    return failure(`The control panel ${lastProblem} (${attempts} attempt${attempts > 1 ? 's' : ''}).`, true, 'UNREACHABLE');
  }

  /** ": <message>" from an error reply ({"message": ...} or plain text), for the failure's message. */
  private said(text: string): string {
    let message = text.trim();
    try {
      const parsed = JSON.parse(text) as unknown;
      if (isObject(parsed) && typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // plain text
    }
    return message ? `: ${clip(message.split(/\r?\n/)[0])}` : '';
  }
}

const createWebhookGate: PluginFactory<WebhookGate> = (context) => new WebhookGate(context);
export default createWebhookGate;
