/**
 * readBody (src/api/http-body.ts) decodes with Buffer#toString instead of raw-body's iconv-lite path: the text must
 * be what iconv-lite gave (byte order mark dropped, invalid UTF-8 as U+FFFD), compressed or not, over real HTTP.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { expect } from 'chai';
import getRawBody from 'raw-body';
import { BodyTooLargeError, readBody } from '../../src/api/http-body';

let server: http.Server;
let url: string;
/** Every readBody failure the server saw, in order. */
const failures: Error[] = [];

describe('readBody: request bodies as text', () => {
  before(async () => {
    server = http.createServer((req, res) => {
      readBody(req, 1000).then(
        (text) => res.end(JSON.stringify({ ours: text })),
        (e: Error) => {
          failures.push(e);
          res.statusCode = e instanceof BodyTooLargeError ? 413 : 400;
          res.end(e.message);
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const post = async (body: Buffer, headers: Record<string, string> = {}) => {
    const r = await fetch(url, { method: 'POST', body, headers });
    return { status: r.status, text: r.status === 200 ? (JSON.parse(await r.text()) as { ours: string }).ours : await r.text() };
  };
  const iconv = (bytes: Buffer) => getRawBody(Readable.from([bytes]), { encoding: 'utf8' });

  for (const [label, bytes] of [
    ['plain UTF-8 with multi-byte characters', Buffer.from('<a>Grüße, 東京, 😀</a>', 'utf8')],
    ['a leading byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<a>x</a>')])],
    ['invalid UTF-8 sequences', Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0x3c, 0x2f, 0x61, 0x3e])],
    ['a byte order mark that is not at the start', Buffer.concat([Buffer.from('<a>'), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('</a>')])],
  ] as const) {
    it(`decodes ${label} as iconv-lite did, plain and gzip-compressed`, async () => {
      const expected = await iconv(bytes);
      expect((await post(bytes)).text).to.equal(expected);
      expect((await post(zlib.gzipSync(bytes), { 'content-encoding': 'gzip' })).text).to.equal(expected);
    });
  }

  it('still refuses a body over the limit, counted after decompression', async () => {
    expect((await post(Buffer.alloc(1001, 0x61))).status).to.equal(413);
    expect((await post(zlib.gzipSync(Buffer.alloc(5000, 0x61)), { 'content-encoding': 'gzip' })).status).to.equal(413);
  });

  it('refuses a chunked body (no Content-Length) as soon as it passes the limit, before the sender has finished', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      // 1,200 bytes in 100-byte chunks, the last ones never sent: the answer comes before the body ends.
      for (let i = 0; i < 12; i++) req.write(Buffer.alloc(100, 0x61));
    });
    expect(status).to.equal(413);
  });

  it('fails an aborted upload (less than the Content-Length, then the connection closes) instead of waiting forever', async () => {
    const before = failures.length;
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<a>only part');
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.destroy();
    for (let i = 0; i < 100 && failures.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(failures.length).to.equal(before + 1);
    expect(failures[before]).to.not.be.instanceOf(BodyTooLargeError);
    expect((await post(Buffer.from('<a>next</a>'))).text).to.equal('<a>next</a>');
  });
});
