import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Router from '@koa/router';
import { Server as SoapServer, WSDL } from 'soap';
import type { Actor, Role } from '../../context';
import { AppError } from '../../domain/errors';
import type { Services } from '../../services';
import { toAppError } from '../api-errors';
import { runOperation } from '../call';
import { clientAddress } from '../client-address';
import { BodyTooLargeError, readBody } from '../http-body';
import { assertSafeXml } from '../xml-guard';
import { soapFault, soapFaultEnvelope } from './soap-faults';
import { text } from './wire';

export interface SoapOperation {
  mutating: boolean;
  run(args: Record<string, unknown>, actor: Actor): Promise<Record<string, unknown>>;
}

export interface SoapServiceDefinition {
  service: string;
  port: string;
  path: string;
  wsdlFile: string;
  namespace: string;
  operations: Record<string, SoapOperation>;
  /** Declared in the WSDL but not built yet: operation -> the capability that brings it. */
  unavailable: (operation: string) => AppError;
}

const API_ROLES: readonly Role[] = ['api', 'admin'];

// Every scalar stays text: money, ids and dates are read by our own strict parsers, never through a float.
const KEEP_TEXT = (t: string) => t;
const DESERIALIZE_AS_TEXT = Object.fromEntries(
  ['decimal', 'long', 'int', 'integer', 'short', 'double', 'float', 'boolean', 'dateTime', 'date'].map((t) => [t, KEEP_TEXT]),
);

interface HwRequest extends IncomingMessage {
  body?: string;
  hwRequestId?: string;
  /** The operation the SOAPAction header named (node-soap never sees the header). */
  hwSoapAction?: string;
}

type SoapFaultObject = { faultcode?: unknown; faultstring?: unknown; detail?: unknown; statusCode?: number };

/** Ours: built by soapFault(), with detail/tns:Error already serialized. */
function isOurFault(f: SoapFaultObject): boolean {
  return (f.faultcode === 'soap:Client' || f.faultcode === 'soap:Server') && typeof (f.detail as { $xml?: unknown } | undefined)?.$xml === 'string';
}

/** Picks the operation element out of the SOAP Body without a full parse (the guard has already vetted the text). */
function bodyOperation(xml: string): string | undefined {
  const m = /<(?:[A-Za-z_][\w.-]*:)?Body\b[^>]*>\s*(?:<!--[\s\S]*?-->\s*)*<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)/.exec(xml);
  return m?.[1];
}

function soapActionOperation(header: string | string[] | undefined): string | undefined {
  let raw = (Array.isArray(header) ? header[0] : header)?.trim();
  if (raw !== undefined && raw.length >= 2 && raw.charCodeAt(0) === 34 && raw.charCodeAt(raw.length - 1) === 34) raw = raw.slice(1, -1); // "..."
  if (!raw) return undefined;
  const hash = raw.lastIndexOf('#');
  const slash = raw.lastIndexOf('/');
  return raw.slice(Math.max(hash, slash) + 1);
}

const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** A raw request handler for a POST path; the server dispatches API POSTs to these directly, without Koa. */
export type PostHandler = (req: IncomingMessage, res: ServerResponse, requestId: string) => Promise<void>;

/** Registers each service's WSDL (GET, on the Koa router) and returns its SOAP POST handlers by path. */
export async function mountSoap(services: Services, router: Router, definitions: SoapServiceDefinition[]): Promise<Record<string, PostHandler>> {
  const { config, log } = services.deps;
  const posts: Record<string, PostHandler> = {};
  for (const def of definitions) {
    const wsdlText = fs.readFileSync(def.wsdlFile, 'utf8');
    const wsdl = new WSDL(wsdlText, def.wsdlFile, { customDeserializer: DESERIALIZE_AS_TEXT } as never);
    await new Promise<void>((resolve, reject) => wsdl.onReady((err?: Error) => (err ? reject(err) : resolve())));
    const binding = Object.values((wsdl as unknown as { definitions: { bindings: Record<string, { methods: Record<string, unknown> }> } }).definitions.bindings)[0];
    const declared = new Set(Object.keys(binding.methods));

    const impl: Record<string, (args: Record<string, unknown>, cb: unknown, headers: Record<string, unknown> | undefined, req: HwRequest) => Promise<unknown>> = {};
    for (const name of declared) {
      const op = def.operations[name];
      impl[name] = async (args, _cb, headers, req) => {
        try {
          // The operation node-soap dispatched is the one the body names; the early check in the route reads the
          // text with a regular expression, which a comment or a nested Body element can mislead. This one cannot.
          if (req.hwSoapAction !== undefined && req.hwSoapAction !== name) {
            throw new AppError('INVALID_ARGUMENT', `The SOAPAction names '${req.hwSoapAction}' but the body calls '${name}'; they must agree.`, 'SOAPAction');
          }
          const actor = await authenticate(services, headers, req);
          if (!op) throw def.unavailable(name);
          return await runOperation(services, actor, { name, mutating: op.mutating }, () => op.run(args ?? {}, actor));
        } catch (e) {
          throw soapFault(toAppError(e, log, { operation: name, channel: 'soap' }), def.namespace);
        }
      };
    }
    const server = new SoapServer(null as never, def.path, { [def.service]: { [def.port]: impl } } as never, wsdl as never, { suppressStack: true } as never);
    // node-soap echoes a mustUnderstand Security/Timestamp header when the request had one; strict clients reject it.
    const envelope = (server as unknown as { _envelope(body: string, headers: string, ts: boolean): string })._envelope.bind(server);
    (server as unknown as { _envelope(body: string, headers: string, ts: boolean): string })._envelope = (body, headers) => envelope(body, headers, false);
    // Every fault node-soap makes itself (malformed XML: faultcode 500 and the parser's text; a JavaScript error
    // while dispatching: a SOAP 1.2 Reason with the error's text) leaves in our format: soap:Client/soap:Server and
    // detail/tns:Error, with no internals.
    const internals = server as unknown as {
      _sendError(fault: SoapFaultObject, cb: unknown, ts: unknown): unknown;
      _process(xml: string, req: IncomingMessage, res: unknown, cb: unknown): unknown;
    };
    const sendError = internals._sendError.bind(server);
    internals._sendError = (fault, cb, ts) => {
      if (isOurFault(fault)) return sendError(fault, cb, ts);
      const err =
        fault.faultstring === 'Invalid XML'
          ? new AppError('INVALID_ARGUMENT', `The request is not well-formed XML (${parserMessage(fault.detail)}).`, 'xml')
          : toAppError(new Error(`node-soap fault: ${JSON.stringify(fault)}`), log, { operation: 'soap-dispatch', channel: 'soap' });
      return sendError(soapFault(err, def.namespace).Fault, cb, ts);
    };
    // A plain exception out of _process would be answered with its message as the whole (non-XML) body.
    const processXml = internals._process.bind(server);
    internals._process = (xml, req, res, cb) => {
      try {
        return processXml(xml, req, res, cb);
      } catch (e) {
        if (e !== null && typeof e === 'object' && 'Fault' in e) throw e;
        throw soapFault(toAppError(e, log, { operation: 'soap-dispatch', channel: 'soap' }), def.namespace);
      }
    };

    const wsdlFor = new Map<string, string>();
    router.get(def.path, (ctx) => {
      if (!Object.prototype.hasOwnProperty.call(ctx.query, 'wsdl') && !/^wsdl$/i.test(ctx.querystring)) {
        ctx.status = 405;
        ctx.set('Allow', 'POST');
        ctx.body = `POST SOAP requests here; the WSDL is at ${def.path}?wsdl`;
        return;
      }
      const host = ctx.get('host');
      const base = config.publicUrl || `${ctx.protocol}://${HOST.test(host) ? host : `localhost:${config.port}`}`;
      let body = wsdlFor.get(base);
      if (!body) {
        body = wsdlText.replace(/(<soap:address\s+location=")[^"]*(")/, `$1${base}${def.path}$2`);
        if (wsdlFor.size < 16) wsdlFor.set(base, body);
      }
      ctx.type = 'text/xml; charset=utf-8';
      ctx.body = body;
    });

    posts[def.path] = async (req: HwRequest, res: ServerResponse, requestId: string) => {
      let xml: string;
      try {
        xml = await readBody(req, config.bodyLimitBytes);
      } catch (e) {
        if (e instanceof BodyTooLargeError) return refuseSoap(res, def.namespace, new AppError('INVALID_ARGUMENT', e.message, 'body'), 413);
        return refuseSoap(res, def.namespace, new AppError('INVALID_ARGUMENT', 'The request body could not be read (bad compression or an aborted upload).', 'body'));
      }
      try {
        assertSafeXml(xml);
      } catch (e) {
        return refuseSoap(res, def.namespace, toAppError(e, log, { operation: 'soap-guard' }));
      }
      const operation = bodyOperation(xml);
      if (!operation) return refuseSoap(res, def.namespace, new AppError('INVALID_ARGUMENT', 'The SOAP Body holds no operation element.', 'Body'));
      if (!declared.has(operation)) {
        return refuseSoap(res, def.namespace, new AppError('INVALID_ARGUMENT', `${def.service} has no operation '${operation}'; see ${def.path}?wsdl.`, 'Body'));
      }
      const action = soapActionOperation(req.headers.soapaction);
      if (action !== undefined && action !== operation) {
        return refuseSoap(res, def.namespace, new AppError('INVALID_ARGUMENT', `The SOAPAction names '${action}' but the body calls '${operation}'; they must agree.`, 'SOAPAction'));
      }
      // The body decides (node-soap would otherwise route by the header); the operation's wrapper compares again.
      // (undefined rather than delete: node-soap tests typeof, and a delete makes the headers a slow dictionary)
      req.headers.soapaction = undefined;
      req.body = xml;
      req.hwRequestId = requestId;
      req.hwSoapAction = action;
      // node-soap copies the request's Content-Type onto the response; the answer is always SOAP 1.1 XML.
      req.headers['content-type'] = 'text/xml; charset=utf-8';
      // node-soap sets a status only for faults.
      res.statusCode = 200;
      // node-soap answers on its own (our operations' promises, faults included); nothing here waits for it.
      try {
        (server as unknown as { _requestListener(req: IncomingMessage, res: unknown): void })._requestListener(req, res);
      } catch (e) {
        refuseSoap(res, def.namespace, toAppError(e, log, { operation }));
      }
    };
  }
  return posts;
}

function refuseSoap(res: ServerResponse, namespace: string, err: AppError, status = 500): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/xml; charset=utf-8');
  res.end(soapFaultEnvelope(err, namespace));
}

/** sax's message ("Error: Unexpected close tag\nLine: 0\nColumn: 193\nChar: >") on one line. */
function parserMessage(detail: unknown): string {
  return String(detail ?? 'unreadable')
    .replace(/^Error:\s*/, '')
    .split(/\n+/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join(', ')
    .slice(0, 200);
}

/** WS-Security UsernameToken (PasswordText or PasswordDigest) or HTTP Basic; nothing else gets in. */
async function authenticate(services: Services, headers: Record<string, unknown> | undefined, req: HwRequest): Promise<Actor> {
  const ctx = { channel: 'soap' as const, remoteAddr: clientAddress(req, services.deps.config.trustProxy), requestId: req.hwRequestId, requiredRoles: API_ROLES };
  const token = (headers?.Security as Record<string, unknown> | undefined)?.UsernameToken as Record<string, unknown> | undefined;
  if (token) {
    const login = text(token.Username) ?? '';
    const password = token.Password as unknown;
    const type = typeof password === 'object' && password !== null ? String(((password as Record<string, unknown>).attributes as Record<string, unknown> | undefined)?.Type ?? '') : '';
    const secret = text(password) ?? '';
    if (type.endsWith('#PasswordDigest')) {
      return services.auth.authenticateDigest({ login, digest: secret, nonce: text(token.Nonce) ?? '', created: text(token.Created) ?? '' }, ctx);
    }
    return services.auth.authenticate({ login, password: secret }, ctx);
  }
  const auth = req.headers.authorization;
  if (auth && /^Basic\s+/i.test(auth)) {
    const decoded = Buffer.from(auth.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) return services.auth.authenticate({ login: decoded.slice(0, i), password: decoded.slice(i + 1) }, ctx);
  }
  throw new AppError('UNAUTHENTICATED', 'Send credentials: a WS-Security UsernameToken header or HTTP Basic authentication.', 'Security');
}
