import tls from 'node:tls';
import { expect } from 'chai';
import { frame, FrameError, FrameReader } from '../../plugins/registrar/epp/framing';
import { el, parseXml, render, XmlInputError, XmlParseError } from '../../plugins/registrar/epp/xml';
import { CONTACT_NS, DOMAIN_NS, EPP_NS, HOST_NS, startTestEppServer, type TestEppServer } from './server';

/** A bare TLS client speaking raw frames, to test the server's wire behaviour byte by byte. */
async function rawClient(server: TestEppServer) {
  const socket = tls.connect({ host: server.host, port: server.port, ca: server.ca });
  const reader = new FrameReader(1 << 20);
  const frames: string[] = [];
  const waiters: ((s: string) => void)[] = [];
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    for (const f of reader.push(chunk)) {
      const w = waiters.shift();
      if (w) w(f);
      else frames.push(f);
    }
  });
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const next = (ms = 3000) =>
    new Promise<string>((resolve, reject) => {
      const ready = frames.shift();
      if (ready !== undefined) return resolve(ready);
      const timer = setTimeout(() => reject(new Error('no frame in time')), ms);
      waiters.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  return {
    socket,
    next,
    send: (xml: string) => socket.write(frame(xml)),
    isClosed: () => closed,
    close: () => socket.destroy(),
  };
}

const cmd = (body: string, clTRID = 'raw-1') => `<?xml version="1.0" encoding="UTF-8"?><epp xmlns="${EPP_NS}"><command>${body}<clTRID>${clTRID}</clTRID></command></epp>`;
const login = (user: string, pw: string) => cmd(`<login><clID>${user}</clID><pw>${pw}</pw><options><version>1.0</version><lang>en</lang></options><svcs><objURI>${DOMAIN_NS}</objURI><objURI>${CONTACT_NS}</objURI><objURI>${HOST_NS}</objURI></svcs></login>`, 'raw-login');
const code = (xml: string) => Number(/<result code="(\d{4})"/.exec(xml)?.[1]);
const dom = (verb: string, inner: string) => `<${verb}><domain:${verb} xmlns:domain="${DOMAIN_NS}">${inner}</domain:${verb}></${verb}>`;
const contactCreate = (id: string) =>
  `<create><contact:create xmlns:contact="${CONTACT_NS}"><contact:id>${id}</contact:id><contact:postalInfo type="int"><contact:name>Raw Person</contact:name><contact:addr><contact:street>1 Raw St</contact:street><contact:city>Rawton</contact:city><contact:cc>US</contact:cc></contact:addr></contact:postalInfo><contact:voice>+1.5555550100</contact:voice><contact:email>raw@example.test</contact:email><contact:authInfo><contact:pw>raw-pw-1</contact:pw></contact:authInfo></contact:create></create>`;

describe('EPP wire format', () => {
  describe('framing (RFC 5734)', () => {
    it('frames a document with a 4-byte big-endian length that counts itself', () => {
      const f = frame('<épp/>');
      expect(f.readUInt32BE(0)).to.equal(4 + Buffer.byteLength('<épp/>'));
      expect(f.subarray(4).toString('utf8')).to.equal('<épp/>');
    });

    it('reads frames split across chunks byte by byte, and frames coalesced in one chunk', () => {
      const r = new FrameReader(1000);
      const bytes = Buffer.concat([frame('<a/>'), frame('<b>ü</b>')]);
      const got: string[] = [];
      for (let i = 0; i < bytes.length; i++) got.push(...r.push(bytes.subarray(i, i + 1)));
      expect(got).to.deep.equal(['<a/>', '<b>ü</b>']);
      expect(new FrameReader(1000).push(Buffer.concat([frame('<x/>'), frame('<y/>'), frame('<z/>').subarray(0, 6)]))).to.deep.equal(['<x/>', '<y/>']);
    });

    it('refuses a length beyond the limit or below the header size', () => {
      const big = Buffer.alloc(4);
      big.writeUInt32BE(2001, 0);
      expect(() => new FrameReader(2000).push(big)).to.throw(FrameError, /2001 bytes/);
      const tiny = Buffer.alloc(4);
      tiny.writeUInt32BE(4, 0);
      expect(() => new FrameReader(2000).push(tiny)).to.throw(FrameError, /less than its own header/);
    });
  });

  describe('XML', () => {
    it('escapes text and attributes, and refuses control characters', () => {
      expect(render(el('a', { q: `"<&>'` }, `x < y & "z"`))).to.equal(`<a q="&quot;&lt;&amp;&gt;&apos;">x &lt; y &amp; "z"</a>`);
      expect(() => render(el('a', null, 'bell\u0007'))).to.throw(XmlInputError);
      expect(() => render(el('a b'))).to.throw(XmlInputError);
    });

    it('refuses a DOCTYPE or an entity declaration in an answer', async () => {
      let caught: unknown;
      try {
        await parseXml('<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x SYSTEM "file:///etc/passwd">]><epp>&x;</epp>');
      } catch (e) {
        caught = e;
      }
      expect(caught).to.be.instanceOf(XmlParseError);
    });
  });

  describe('the test registry', () => {
    let server: TestEppServer;
    before(async () => {
      server = await startTestEppServer({ maxFrameBytes: 8192 });
    });
    after(async () => {
      await server?.close();
    });

    it('greets with its service menu, refuses commands before login and a wrong password (2200), then logs in', async () => {
      const c = await rawClient(server);
      try {
        const greeting = await c.next();
        expect(greeting).to.contain('<greeting>').and.contain(`<objURI>${DOMAIN_NS}</objURI>`);
        c.send(cmd(dom('check', '<domain:name>a.test</domain:name>')));
        expect(code(await c.next())).to.equal(2002);
        c.send(login('hw-registrar', 'wrong-password'));
        expect(code(await c.next())).to.equal(2200);
        c.send(login('hw-registrar', 'registrar-pw'));
        const ok = await c.next();
        expect(code(ok)).to.equal(1000);
        expect(ok).to.contain('<clTRID>raw-login</clTRID>');
        c.send(`<?xml version="1.0"?><epp xmlns="${EPP_NS}"><hello/></epp>`);
        expect(await c.next()).to.contain('<greeting>');
      } finally {
        c.close();
      }
    });

    it('checks, creates (2302 when it exists), reads, renews, transfers (2201 on a wrong auth code), updates, deletes and logs out', async () => {
      const c = await rawClient(server);
      try {
        await c.next();
        c.send(login('hw-registrar', 'registrar-pw'));
        expect(code(await c.next())).to.equal(1000);
        c.send(cmd(contactCreate('raw-c1')));
        expect(code(await c.next())).to.equal(1000);
        c.send(cmd(dom('check', '<domain:name>raw-one.test</domain:name><domain:name>bad_name.test</domain:name>')));
        const check = await c.next();
        expect(check).to.contain('<domain:name avail="1">raw-one.test</domain:name>').and.contain('<domain:name avail="0">bad_name.test</domain:name>');
        const create = dom('create', '<domain:name>raw-one.test</domain:name><domain:period unit="y">2</domain:period><domain:registrant>raw-c1</domain:registrant><domain:authInfo><domain:pw>raw-auth-1</domain:pw></domain:authInfo>');
        c.send(cmd(create, 'create-1'));
        const created = await c.next();
        expect(code(created)).to.equal(1000);
        expect(created).to.contain('<clTRID>create-1</clTRID>').and.contain('<domain:exDate>');
        c.send(cmd(create, 'create-2'));
        expect(code(await c.next())).to.equal(2302);
        c.send(cmd(dom('info', '<domain:name>raw-one.test</domain:name>')));
        const info = await c.next();
        expect(info).to.contain('<domain:clID>hw-registrar</domain:clID>').and.contain('<domain:pw>raw-auth-1</domain:pw>');
        const exDate = /<domain:exDate>(\d{4}-\d\d-\d\d)/.exec(info)![1];
        c.send(cmd(dom('renew', `<domain:name>raw-one.test</domain:name><domain:curExpDate>${exDate}</domain:curExpDate><domain:period unit="y">1</domain:period>`)));
        expect(code(await c.next())).to.equal(1000);
        c.send(cmd(dom('renew', `<domain:name>raw-one.test</domain:name><domain:curExpDate>${exDate}</domain:curExpDate><domain:period unit="y">1</domain:period>`)));
        expect(code(await c.next()), 'a stale curExpDate').to.equal(2306);
        c.send(cmd(dom('update', '<domain:name>raw-one.test</domain:name><domain:add><domain:status s="clientHold"/></domain:add>')));
        expect(code(await c.next())).to.equal(1000);
        c.send(cmd(dom('update', '<domain:name>missing.test</domain:name>')));
        expect(code(await c.next())).to.equal(2303);

        const other = await rawClient(server);
        try {
          await other.next();
          other.send(login('other-reg', 'other-pw'));
          expect(code(await other.next())).to.equal(1000);
          other.send(cmd(`<transfer op="request"><domain:transfer xmlns:domain="${DOMAIN_NS}"><domain:name>raw-one.test</domain:name><domain:authInfo><domain:pw>not-it</domain:pw></domain:authInfo></domain:transfer></transfer>`));
          expect(code(await other.next())).to.equal(2201);
          other.send(cmd(dom('info', '<domain:name>raw-one.test</domain:name>')));
          expect(code(await other.next()), 'info by a non-sponsor without the auth code').to.equal(2201);
          other.send(cmd(dom('delete', '<domain:name>raw-one.test</domain:name>')));
          expect(code(await other.next())).to.equal(2201);
        } finally {
          other.close();
        }

        c.send(cmd(dom('delete', '<domain:name>raw-one.test</domain:name>')));
        expect(code(await c.next())).to.equal(1000);
        c.send(cmd('<logout/>'));
        expect(code(await c.next())).to.equal(1500);
        await new Promise((r) => setTimeout(r, 50));
        expect(c.isClosed(), 'the server closes the connection after logout').to.equal(true);
      } finally {
        c.close();
      }
    });

    it('answers commands sent a byte at a time, and two commands coalesced in one write, in order', async () => {
      const c = await rawClient(server);
      try {
        await c.next();
        const bytes = frame(login('hw-registrar', 'registrar-pw'));
        for (let i = 0; i < bytes.length; i++) {
          c.socket.write(bytes.subarray(i, i + 1));
          if (i % 50 === 0) await new Promise((r) => setImmediate(r));
        }
        expect(code(await c.next())).to.equal(1000);
        c.socket.write(Buffer.concat([frame(cmd(dom('check', '<domain:name>one.test</domain:name>'), 'first')), frame(cmd(dom('check', '<domain:name>two.test</domain:name>'), 'second'))]));
        const a = await c.next();
        const b = await c.next();
        expect(a).to.contain('<clTRID>first</clTRID>').and.contain('one.test');
        expect(b).to.contain('<clTRID>second</clTRID>').and.contain('two.test');
      } finally {
        c.close();
      }
    });

    it('refuses an oversize frame with 2500 and closes the connection', async () => {
      const c = await rawClient(server);
      try {
        await c.next();
        const head = Buffer.alloc(4);
        head.writeUInt32BE(100 * 1024 * 1024, 0);
        c.socket.write(head);
        const answer = await c.next();
        expect(code(answer)).to.equal(2500);
        expect(answer).to.contain('limit 8192');
        await new Promise((r) => setTimeout(r, 50));
        expect(c.isClosed()).to.equal(true);
      } finally {
        c.close();
      }
    });

    it('refuses a DOCTYPE in a command with 2001', async () => {
      const c = await rawClient(server);
      try {
        await c.next();
        c.send(`<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x "y">]><epp xmlns="${EPP_NS}"><hello/></epp>`);
        expect(code(await c.next())).to.equal(2001);
      } finally {
        c.close();
      }
    });
  });
});
