import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { writeAudit } from '../../audit/audit';
import type { Actor, Role } from '../../context';
import { AppError, type ErrorCode } from '../../domain/errors';
import type { Services } from '../../services';
import { toAppError, XMLRPC_FAULT_CODES } from '../api-errors';
import { runOperation } from '../call';
import { clientAddress } from '../client-address';
import { BodyTooLargeError, readBody } from '../http-body';
import { parseMethodCall, serializeFault, serializeResponse, type XmlRpcValue } from './codec';
import type { MethodTable } from './method-table';
import { Params } from './params';
import { XmlRpcTransactions } from './transactions';

const API_ROLES: readonly Role[] = ['api', 'admin'];
const GATES = new Set(['BM', 'DOMAINGATE', 'DUMMYGATE', 'MESSAGE', 'TASKMAN', 'PEMGATE']);

/** PBA clients parse "Table X does not contain row with ID N." out of NOT_FOUND faults; keep their wording. */
function faultMessage(err: AppError): string {
  if (err.code === 'NOT_FOUND' && err.entity && err.entityId !== undefined) {
    return `Table ${err.entity.replace(/(^|\s)(\w)/g, (_m, _s: string, c: string) => c.toUpperCase())} does not contain row with ID ${err.entityId}.`;
  }
  return err.field ? `${err.message} (${err.field})` : err.message;
}

function member(struct: Record<string, XmlRpcValue>, name: string): XmlRpcValue {
  return Object.prototype.hasOwnProperty.call(struct, name) ? struct[name] : undefined;
}

/** A struct member as text (numbers and the like as their String), or undefined when absent or nil. */
function memberText(struct: Record<string, XmlRpcValue>, name: string): string | undefined {
  const v = member(struct, name);
  return v === undefined || v === null ? undefined : typeof v === 'string' ? v : String(v);
}

interface Call {
  gate: string;
  method: string;
  params: XmlRpcValue[];
  login?: string;
  password?: string;
  autoCommit: boolean;
  transactionId?: string;
}

function readCall(methodName: string, params: XmlRpcValue[]): Call | { control: 'commit' | 'rollback'; transactionId: string; login?: string; password?: string } {
  const first = params[0];
  if (first === null || typeof first !== 'object' || Array.isArray(first) || first instanceof Date || Buffer.isBuffer(first)) {
    throw new AppError('INVALID_ARGUMENT', `${methodName} takes one struct parameter, e.g. {Server: "BM", Method: "GetVersion_API", Params: []}.`, 'params[0]');
  }
  const s = first as Record<string, XmlRpcValue>;
  const password = memberText(s, 'Password');
  const creds = { login: memberText(s, 'Username'), password: password?.startsWith('XXX') ? password.slice(3) : password };
  const control = methodName === 'CommitTransaction' || methodName === 'RollbackTransaction' ? methodName : memberText(s, 'Method') === 'CommitTransaction' || memberText(s, 'Method') === 'RollbackTransaction' ? memberText(s, 'Method') : undefined;
  if (control) {
    const transactionId = memberText(s, 'TransactionID');
    if (!transactionId) throw new AppError('INVALID_ARGUMENT', `${control} needs the TransactionID.`, 'TransactionID');
    return { control: control === 'CommitTransaction' ? 'commit' : 'rollback', transactionId, ...creds };
  }
  if (methodName !== 'Execute') throw new AppError('INVALID_ARGUMENT', `Unknown method ${methodName}; call Execute with {Server, Method, Params}.`, 'methodName');
  // Older clients name the gate through Container ("BM_Container") instead of Server.
  const gate = (memberText(s, 'Server') ?? memberText(s, 'Container')?.replace(/_Container$/, '') ?? '').toUpperCase();
  const method = memberText(s, 'Method') ?? '';
  if (!method) throw new AppError('INVALID_ARGUMENT', 'The Execute struct needs a Method member.', 'Method');
  if (!GATES.has(gate)) throw new AppError('INVALID_ARGUMENT', `Unknown Server '${gate}'; one of ${[...GATES].join(', ')}.`, 'Server');
  const p = member(s, 'Params');
  if (p !== undefined && p !== null && !Array.isArray(p)) throw new AppError('INVALID_ARGUMENT', 'Params must be an array of positional parameters.', 'Params');
  return { gate, method, params: (p as XmlRpcValue[] | undefined) ?? [], ...creds, autoCommit: (memberText(s, 'AutoCommit') ?? 'Yes').toLowerCase() !== 'no', transactionId: memberText(s, 'TransactionID') };
}

function basicAuth(req: IncomingMessage): { login?: string; password?: string } {
  const h = req.headers.authorization;
  if (!h || !/^Basic\s+/i.test(h)) return {};
  const d = Buffer.from(h.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
  const i = d.indexOf(':');
  return i > 0 ? { login: d.slice(0, i), password: d.slice(i + 1) } : {};
}

/** The audit record of a failed state-changing call, as runOperation writes it (used where that one was rolled back). */
async function auditFailure(services: Services, actor: Actor, operation: string, e: unknown): Promise<void> {
  const err = toAppError(e, services.deps.log, { operation, channel: actor.channel });
  await writeAudit(services.deps.db, actor, services.deps.clock.now(), {
    operation,
    outcome: 'error',
    errorCode: err.code,
    details: { message: err.message, field: err.field },
  }).catch((auditError: Error) => services.deps.log.error('could not write the audit record of a failed call', { error: auditError.message }));
}

/** The PBA-compatible `Execute` endpoint as a plain Node request handler, served on /RPC2 and on the legacy port. */
export class XmlRpcEndpoint {
  readonly transactions: XmlRpcTransactions;
  private readonly credentialKey = crypto.randomBytes(32);

  constructor(
    private readonly services: Services,
    private readonly methods: MethodTable,
  ) {
    this.transactions = new XmlRpcTransactions(services.deps, services.plugins);
  }

  private credential(login: string, password: string): string {
    return crypto.createHmac('sha256', this.credentialKey).update(login).update('\0').update(password).digest('base64');
  }

  private fault(res: ServerResponse, requestId: string, e: unknown, status = 200): void {
    const err = toAppError(e, this.services.deps.log, { channel: 'xmlrpc', requestId });
    send(res, requestId, status, serializeFault(XMLRPC_FAULT_CODES[err.code as ErrorCode], faultMessage(err)));
  }

  private invoke(services: Services, actor: Actor, call: Call): Promise<XmlRpcValue> {
    const key = `${call.gate}.${call.method}`;
    const method = this.methods[key];
    if (!method) {
      return Promise.reject(new AppError('INVALID_ARGUMENT', `Server ${call.gate} has no method ${call.method}.`, 'Method'));
    }
    return runOperation(services, actor, { name: call.method, mutating: method.mutating }, () => method.run(new Params(call.params, call.method), actor, services));
  }

  handle = async (req: IncomingMessage, res: ServerResponse, requestId: string = crypto.randomUUID()): Promise<void> => {
    // (no per-call closures: under tsx every named one costs a defineProperty for its name)
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return send(res, requestId, 405, serializeFault(XMLRPC_FAULT_CODES.INVALID_ARGUMENT, 'POST an XML-RPC methodCall to this address.'));
    }
    let xml: string;
    try {
      xml = await readBody(req, this.services.deps.config.bodyLimitBytes);
    } catch (e) {
      if (e instanceof BodyTooLargeError) return this.fault(res, requestId, new AppError('INVALID_ARGUMENT', e.message, 'body'), 413);
      return this.fault(res, requestId, new AppError('INVALID_ARGUMENT', 'The request body could not be read (bad compression or an aborted upload).', 'body'));
    }
    try {
      const { methodName, params } = parseMethodCall(xml);
      const call = readCall(methodName, params);
      const http = basicAuth(req);
      const login = call.login ?? http.login ?? '';
      const password = call.password ?? http.password ?? '';
      // Only client-held transactions need this.credential() (to tell their owner from everyone else): most calls
      // skip the HMAC.
      if ('control' in call) {
        if (call.control === 'commit') await this.transactions.commit(call.transactionId, this.credential(login, password));
        else await this.transactions.rollback(call.transactionId, this.credential(login, password));
        return send(res, requestId, 200, serializeResponse({ Result: [{ Status: 'Operation done.' }] }));
      }
      const method = this.methods[`${call.gate}.${call.method}`];
      if (call.transactionId) {
        const result = await this.transactions.run(call.transactionId, this.credential(login, password), (services, actor) => this.invoke(services, { ...actor, requestId }, call));
        return send(res, requestId, 200, serializeResponse({ Result: [result], TransactionID: call.transactionId }));
      }
      if (!login) throw new AppError('UNAUTHENTICATED', 'Send credentials: Username and Password members of the Execute struct, or HTTP Basic authentication.', 'Username');
      const actor = await this.services.auth.authenticate({ login, password }, { channel: 'xmlrpc', remoteAddr: clientAddress(req, this.services.deps.config.trustProxy), requestId, requiredRoles: API_ROLES });
      if (!call.autoCommit) {
        const owner = this.credential(login, password);
        const id = await this.transactions.begin(actor, owner);
        let result: XmlRpcValue;
        try {
          result = await this.transactions.run(id, owner, (services, a) => this.invoke(services, a, call));
        } catch (e) {
          // A fault carries no TransactionID, so the client can never commit, roll back or continue a transaction
          // whose first call failed: end it now instead of holding it (on SQLite: the only connection, which
          // stalls every other request) until the idle timeout. The failure's audit record was written inside
          // the transaction and goes with it, so write it again outside.
          await this.transactions.rollback(id, owner).catch(() => undefined);
          if (method?.mutating) await auditFailure(this.services, actor, call.method, e);
          throw e;
        }
        return send(res, requestId, 200, serializeResponse({ Result: [result], TransactionID: id }));
      }
      const result = await this.invoke(this.services, actor, call);
      return send(res, requestId, 200, serializeResponse({ Result: [result] }));
    } catch (e) {
      return this.fault(res, requestId, e);
    }
  };
}

function send(res: ServerResponse, requestId: string, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/xml; charset=utf-8');
  res.setHeader('X-Request-Id', requestId);
  res.end(body);
}
