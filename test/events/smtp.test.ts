import { expect } from 'chai';
import net from 'node:net';
import { deliveryHandlers } from '../../src/events/delivery';
import { EVENTS_QUEUE, EventDispatcher } from '../../src/events/dispatcher';
import { Worker } from '../../src/jobs/worker';
import { accountActor, makeWorld, type World } from '../helpers/world';

/** A minimal SMTP server in the test (no TLS, no auth): records each message's envelope and data. */
async function smtpServer(): Promise<{ port: number; messages: { from: string; to: string[]; data: string }[]; close(): Promise<void> }> {
  const messages: { from: string; to: string[]; data: string }[] = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let current = { from: '', to: [] as string[], data: '' };
    socket.write('220 test.local ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          current.data = buffer.slice(0, end);
          buffer = buffer.slice(end + 5);
          inData = false;
          messages.push(current);
          current = { from: '', to: [], data: '' };
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250-test.local\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL') (current.from = line), socket.write('250 OK\r\n');
        else if (verb === 'RCPT') current.to.push(line), socket.write('250 OK\r\n');
        else if (verb === 'DATA') (inData = true), socket.write('354 go ahead\r\n');
        else if (verb === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 OK\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, messages, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('notifications by SMTP (SMTP_URL set)', function () {
  this.timeout(30_000);
  let world: World;
  let smtp: Awaited<ReturnType<typeof smtpServer>>;

  before(async () => {
    smtp = await smtpServer();
    world = await makeWorld({ config: { smtpUrl: `smtp://127.0.0.1:${smtp.port}`, mailFrom: 'Billing <billing@hosting.example>' } });
  });
  after(async () => {
    await world?.close();
    await smtp?.close();
  });

  it('sends the rendered message through the SMTP server and keeps it in the spool as sent; a re-dispatch sends nothing twice', async () => {
    const dispatcher = new EventDispatcher(world.deps, world.services.tasks);
    await dispatcher.dispatchOnce(); // the bootstrap's events go out to no action
    await world.services.eventActions.create(world.provider, { name: 'Welcome', eventPattern: 'account.created', type: 'notification', config: {} });
    await world.services.notifications.createTemplate(world.provider, { name: 'account.created', subject: 'Welcome, {{ account.companyName }}', html: '<p>Hi {{ contact.firstName }}</p>', text: 'Hi {{ contact.firstName }}' });
    const worker = new Worker(world.deps, world.services.tasks, deliveryHandlers(world.deps, { dispatcher, notifications: world.services.notifications }), { owner: 'smtp-test', queues: [EVENTS_QUEUE] });
    const [{ since }] = (await world.deps.db('events').max({ since: 'id' })) as { since: number }[];
    const customer = await accountActor(world, world.provider, 'customer', 'Mailed');
    await dispatcher.dispatchOnce();
    await worker.runOnce();

    expect(smtp.messages).to.have.length(1);
    const [m] = smtp.messages;
    expect(m.from).to.contain('billing@hosting.example');
    expect(m.to.join()).to.contain('mailed@example.com');
    expect(m.data).to.contain('Subject: Welcome, Mailed').and.contain('Hi Mailed');
    const spool = await world.services.notifications.listSpool(world.provider, { accountId: customer.accountId });
    expect(spool.items.map((x) => x.status)).to.deep.equal(['sent']);

    // A crash after dispatch would leave the events undispatched: dispatching them again creates no second delivery.
    await world.deps.db('events').where('id', '>', since).update({ dispatched_at: null });
    const again = await dispatcher.dispatchOnce();
    expect(again.deliveries).to.equal(0);
    expect(await worker.runOnce()).to.equal(0);
    expect(smtp.messages).to.have.length(1);
  });
});
