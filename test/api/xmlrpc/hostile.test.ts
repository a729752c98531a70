import http from 'node:http';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { XMLRPC_FAULT_CODES } from '../../../src/api/api-errors';
import { VERSION } from '../../../src/version';
import { ADMIN_PASSWORD, startApiWorld, type ApiWorld } from '../../helpers/api';
import { bm, fault, postRaw, pyMember, pythonExecuteXml, result, type RpcReply } from './client';

const LIMIT = 65536;

/** An Execute call in Python's bytes whose Params array holds `params` (raw <value> bodies), as admin. */
const executeXml = (method: string, params: string, extraMembers = ''): string =>
  pythonExecuteXml(
    pyMember('Server', '<string>BM</string>') +
      pyMember('Method', `<string>${method}</string>`) +
      pyMember('Params', `<array><data>\n${params}</data></array>`) +
      extraMembers +
      pyMember('Username', '<string>admin</string>') +
      pyMember('Password', `<string>${ADMIN_PASSWORD}</string>`),
  );

/** POSTs a body in chunks without Content-Length (Transfer-Encoding: chunked). */
function postChunked(url: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'Content-Type': 'text/xml' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** Hostile request bodies: each is refused with a fault (or 413), and the server keeps serving, unpolluted. */
describe('XML-RPC hostile input', () => {
  let world: ApiWorld;
  let rpc: string;
  let prototypeNames: string[];
  let counts: { accounts: unknown; audit: unknown };

  const count = async () => ({
    accounts: await world.fresh.db('accounts').count({ n: '*' }),
    audit: await world.fresh.db('audit_log').count({ n: '*' }),
  });

  before(async () => {
    world = await startApiWorld({ config: { bodyLimitBytes: LIMIT } });
    rpc = `${world.url}/RPC2`;
    prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();
    // Authenticate once, so the counts below are not moved by a first sign-in.
    result(await bm(rpc, 'GetVersion_API', [0]));
    counts = await count();
  });
  after(async () => {
    await world?.close();
  });

  /** After each refusal: a normal call still works, and no prototype gained or changed anything. */
  afterEach(async () => {
    expect(result(await bm(rpc, 'GetVersion_API', [0]))).to.deep.equal([`Hostwright ${VERSION}`]);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).to.deep.equal(prototypeNames);
    const probe: Record<string, unknown> = {};
    for (const name of ['polluted', 'isAdmin', 'Server', 'Method']) expect(probe[name], name).to.equal(undefined);
    expect(typeof ({} as { constructor: unknown }).constructor).to.equal('function');
  });

  const refused = (reply: RpcReply, pattern: RegExp) => {
    expect(reply.status).to.equal(200);
    const f = fault(reply);
    expect(f.faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
    expect(f.faultString).to.match(pattern);
    expect(reply.body).not.to.match(/\bat \S+ \(|node_modules|Error:/);
  };

  it('refuses a __proto__ struct member with a fault', async () => {
    const polluting = pyMember('__proto__', `<struct>\n${pyMember('polluted', '<string>yes</string>')}${pyMember('isAdmin', '<boolean>1</boolean>')}</struct>`);
    refused(await postRaw(rpc, executeXml('GetVersion_API', '<value><int>0</int></value>\n', polluting)), /__proto__/);
  });

  it('refuses a __proto__ member inside Params and one spelled with a character reference', async () => {
    const nested = `<value><struct>\n${pyMember('__proto__', `<struct>\n${pyMember('polluted', '<string>yes</string>')}</struct>`)}</struct></value>\n`;
    refused(await postRaw(rpc, executeXml('AccountDetailsGet_API', nested)), /__proto__/);
    const spelled = pyMember('&#95;_proto__', `<struct>\n${pyMember('polluted', '<string>yes</string>')}</struct>`);
    refused(await postRaw(rpc, executeXml('GetVersion_API', '<value><int>0</int></value>\n', spelled)), /__proto__/);
  });

  it('refuses a constructor struct member (and a prototype one) with a fault', async () => {
    const ctor = pyMember('constructor', `<struct>\n${pyMember('prototype', `<struct>\n${pyMember('polluted', '<string>yes</string>')}</struct>`)}</struct>`);
    refused(await postRaw(rpc, executeXml('GetVersion_API', '<value><int>0</int></value>\n', ctor)), /constructor/);
    const proto = pyMember('prototype', `<struct>\n${pyMember('polluted', '<string>yes</string>')}</struct>`);
    refused(await postRaw(rpc, executeXml('GetVersion_API', '<value><int>0</int></value>\n', proto)), /prototype/);
  });

  it('refuses a DOCTYPE (billion laughs) quickly, expanding nothing', async () => {
    const lol = [
      '<?xml version="1.0"?>',
      '<!DOCTYPE lolz [<!ENTITY lol "lol">',
      ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`),
      ']>',
      '<methodCall><methodName>Execute</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>',
    ].join('\n');
    const started = Date.now();
    refused(await postRaw(rpc, lol), /DOCTYPE/);
    expect(Date.now() - started).to.be.below(1000);
  });

  it('refuses an external entity (XXE) DOCTYPE without reading the file', async () => {
    const xxe = `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><methodCall><methodName>Execute</methodName><params><param><value><string>&x;</string></value></param></params></methodCall>`;
    const reply = await postRaw(rpc, xxe);
    refused(reply, /DOCTYPE/);
    expect(reply.fault!.faultString).not.to.contain('root:');
  });

  it('refuses nesting deeper than 64 levels with a fault', async () => {
    const deep = '<value><array><data>'.repeat(40) + '<value><int>1</int></value>' + '</data></array></value>'.repeat(40);
    refused(await postRaw(rpc, executeXml('AccountDetailsGet_API', deep)), /nested deeper than 64/);
  });

  it('refuses more than 10,000 elements with a fault', async () => {
    const many = `<?xml version="1.0"?><methodCall><methodName>Execute</methodName><params>${'<a/>'.repeat(10_001)}</params></methodCall>`;
    expect(Buffer.byteLength(many)).to.be.below(LIMIT);
    const started = Date.now();
    refused(await postRaw(rpc, many), /more than 10000 elements/);
    expect(Date.now() - started).to.be.below(1000);
  });

  it('still accepts a large legal call below the limits (2,000 positional parameters)', async () => {
    const params = '<value><int>1</int></value>\n'.repeat(2000);
    const body = executeXml('AccountDetailsGet_API', params);
    expect(Buffer.byteLength(body)).to.be.within(40_000, LIMIT);
    expect((result(await postRaw(rpc, body)) as unknown[])[0]).to.equal(1);
  });

  it('answers a body over bodyLimitBytes with HTTP 413 and a fault', async () => {
    const big = executeXml('GetVersion_API', `<value><string>${'a'.repeat(3 * LIMIT)}</string></value>\n`);
    const reply = await postRaw(rpc, big);
    expect(reply.status).to.equal(413);
    expect(fault(reply).faultString).to.contain(`${LIMIT}-byte limit`);
  });

  it('answers a chunked body without Content-Length that passes the limit with HTTP 413', async () => {
    const chunk = Buffer.alloc(32 * 1024, 'a');
    const head = Buffer.from("<?xml version='1.0'?><methodCall><methodName>Execute</methodName><params><param><value><string>");
    const reply = await postChunked(rpc, [head, chunk, chunk, chunk]);
    expect(reply.status).to.equal(413);
  });

  it('answers a gzip bomb (48 KB that inflates to 50 MB) with HTTP 413', async () => {
    const bomb = zlib.gzipSync(Buffer.from(executeXml('GetVersion_API', `<value><string>${' '.repeat(50_000_000)}</string></value>\n`)), { level: 9 });
    expect(bomb.length).to.be.below(LIMIT);
    const reply = await postRaw(rpc, bomb, { headers: { 'Content-Encoding': 'gzip' } });
    expect(reply.status).to.equal(413);
    expect(fault(reply).faultString).to.contain('after decompression');
  });

  it('accepts a gzip-compressed call within the limit', async () => {
    const body = zlib.gzipSync(Buffer.from(executeXml('GetVersion_API', '<value><int>0</int></value>\n')));
    expect(result(await postRaw(rpc, body, { headers: { 'Content-Encoding': 'gzip' } }))).to.deep.equal([`Hostwright ${VERSION}`]);
  });

  it('answers a body that claims gzip but is not with a fault', async () => {
    const reply = await postRaw(rpc, Buffer.from('definitely not gzip'), { headers: { 'Content-Encoding': 'gzip' } });
    expect(fault(reply).faultCode).to.equal(XMLRPC_FAULT_CODES.INVALID_ARGUMENT);
  });

  it('answers a non-XML body with a fault', async () => {
    refused(await postRaw(rpc, 'Server=BM&Method=GetVersion_API'), /Malformed XML/);
    refused(await postRaw(rpc, '{"Server": "BM", "Method": "GetVersion_API"}'), /Malformed XML/);
  });

  it('answers an empty body, truncated XML and a document that is not a methodCall with a fault', async () => {
    refused(await postRaw(rpc, ''), /XML/);
    refused(await postRaw(rpc, executeXml('GetVersion_API', '<value><int>0</int></value>\n').slice(0, 150)), /truncated|malformed/i);
    refused(await postRaw(rpc, '<?xml version="1.0"?><methodResponse><params/></methodResponse>'), /must be a <methodCall>/);
  });

  it('answers a methodCall whose parameter is not a struct with a fault', async () => {
    refused(await postRaw(rpc, '<?xml version="1.0"?><methodCall><methodName>Execute</methodName><params><param><value><array><data><value>BM</value></data></array></value></param></params></methodCall>'), /one struct parameter/);
  });

  it('wrote nothing for any of the refused requests', async () => {
    expect(await count()).to.deep.equal(counts);
  });
});
