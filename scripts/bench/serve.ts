/**
 * Benchmark servers, one per child process: `ours` (the real Hostwright server), `bare-soap` (a bare node-soap
 * server on the same WSDL answering the same account), `bare-xmlrpc` (a bare HTTP server that parses the request
 * with xml2js and answers the same bytes).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as soap from 'soap';
import { parseString } from 'xml2js';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startServer } from '../../src/server';

const [kind, port, payloadFile] = process.argv.slice(2);

async function main(): Promise<void> {
  if (kind === 'ours') {
    const config = loadConfig(process.env, { port: Number(port), xmlrpcLegacyPort: 0, logLevel: 'error' });
    await startServer(config, { log: createLogger({ level: 'error', format: 'json', silent: true }), demo: false });
  } else if (kind === 'bare-soap') {
    const account = JSON.parse(fs.readFileSync(payloadFile, 'utf8')) as object;
    const wsdl = fs.readFileSync(path.resolve(__dirname, '../../wsdl/BillingService.wsdl'), 'utf8');
    const server = http.createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    soap.listen(server, '/soap/billing', { BillingService: { BillingServiceSoap: { GetAccount: () => ({ account }) } } }, wsdl);
    server.listen(Number(port), '127.0.0.1');
  } else if (kind === 'bare-xmlrpc') {
    const body = fs.readFileSync(payloadFile, 'utf8');
    http
      .createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          parseString(Buffer.concat(chunks).toString('utf8'), () => {
            res.setHeader('Content-Type', 'text/xml; charset=utf-8');
            res.end(body);
          });
        });
      })
      .listen(Number(port), '127.0.0.1');
  } else {
    throw new Error(`unknown server kind ${kind}`);
  }
  process.send?.('ready');
}

// Exit through process.exit so that --cpu-prof can write its profile.
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));

main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
