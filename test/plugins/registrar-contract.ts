import crypto from 'node:crypto';
import { domainToASCII } from 'node:url';
import { expect } from 'chai';
import type { DomainContacts, Outcome, Registrar } from '../../src/plugins/sdk';
import { expectWellFormed } from './provisioning-contract';

/**
 * The contract every registrar plugin passes: a mocha suite a plugin author runs against their own registrar.
 *
 *   import { registrarContract } from '<hostwright>/test/plugins/registrar-contract';
 *   registrarContract('my registry', async () => ({
 *     registrar: createMyRegistrar(context),
 *     freshName: () => `contract-${crypto.randomUUID().slice(0, 8)}.example`,
 *     transferable: async () => ({ name: 'held-elsewhere.example', authCode: 'its-auth-code' }),
 *     cleanup: async () => {},
 *   }));
 *
 * `make` is called before every test and `cleanup` after it. The registry behind the subject must accept
 * registrations of the names freshName() makes, allow deleting a registration just made (the add grace period),
 * and, when `transferable` is given, hold that name for another registrar with that auth code, approving the
 * transfer by itself within maxPolls polls. When the subject can say which changes the registry really performed
 * (`performed`), the suite also checks that a repeated operation id acted only once.
 */
export interface RegistrarContractSubject {
  registrar: Registrar;
  /** A name nobody holds yet, under a top-level domain the registrar serves. */
  freshName(): string;
  /** A name held by another registrar, and the auth code that transfers it in. */
  transferable?(): Promise<{ name: string; authCode: string }>;
  /** The changes the registry performed, in order (optional). */
  performed?(): Promise<{ action: string; operationId: string }[]>;
  cleanup(): Promise<void>;
}

export interface RegistrarContractOptions {
  /** How many pollTransfer calls a pending transfer may take (default 20). */
  maxPolls?: number;
  /** The action names `performed` uses for register and renew, when they differ from these. */
  performedNames?: { register?: string; renew?: string };
}

const opId = () => `rc-${crypto.randomUUID()}`;

export const CONTRACT_CONTACTS: DomainContacts = {
  registrant: {
    name: 'Ada Contract',
    organization: 'Contract Ltd',
    email: 'ada@contract.example',
    phone: '+1.5555550100',
    street: ['1 Contract Street', 'Suite 2'],
    city: 'Testville',
    state: 'CA',
    postalCode: '90210',
    countryCode: 'US',
  },
  tech: { name: 'Tom Tech', email: 'tech@contract.example', phone: '+44.2070000000', street: ['2 Tech Road'], city: 'London', postalCode: 'N1 1AA', countryCode: 'GB' },
};

const NS = ['ns1.contract-dns.example', 'ns2.contract-dns.example'];

function ok<T>(outcome: Outcome<T>, what: string): T {
  expectWellFormed(outcome, what);
  expect(outcome, `${what}: ${JSON.stringify(outcome)}`).to.deep.include({ status: 'success' });
  return (outcome as unknown as { result: T }).result;
}

function refused(outcome: Outcome<unknown>, what: string, code?: string): { retryable: boolean; code?: string; message: string } {
  expectWellFormed(outcome, what);
  expect(outcome.status, `${what}: ${JSON.stringify(outcome)}`).to.equal('failure');
  const f = outcome as { retryable: boolean; code?: string; message: string };
  if (code) expect(f.code, `${what}: code (${f.message})`).to.equal(code);
  return f;
}

const day = (iso: string) => iso.slice(0, 10);
const yearOf = (iso: string) => Number(iso.slice(0, 4));

export function registrarContract(label: string, make: () => Promise<RegistrarContractSubject>, options: RegistrarContractOptions = {}): void {
  const maxPolls = options.maxPolls ?? 20;
  const registerAction = options.performedNames?.register ?? 'register';
  const renewAction = options.performedNames?.renew ?? 'renew';

  describe(`registrar contract: ${label}`, () => {
    let subject: RegistrarContractSubject;
    let reg: Registrar;

    beforeEach(async () => {
      subject = await make();
      reg = subject.registrar;
    });
    afterEach(async () => {
      await subject?.cleanup();
    });

    async function registered(years = 1, nameservers: string[] = NS): Promise<{ name: string; expiresAt: string }> {
      const name = subject.freshName();
      const result = ok(await reg.register({ operationId: opId(), name, years, nameservers, contacts: CONTRACT_CONTACTS }), `register ${name}`);
      return { name, expiresAt: result.expiresAt };
    }

    async function performedCount(action: string, operationId: string): Promise<number | null> {
      if (!subject.performed) return null;
      return (await subject.performed()).filter((p) => p.action === action && p.operationId === operationId).length;
    }

    it('checks many names at once, in the order given, normalised: a free name is available, a held one is not', async () => {
      const held = await registered();
      const free = subject.freshName();
      const result = ok(await reg.checkAvailability({ operationId: opId(), names: [free.toUpperCase(), held.name] }), 'checkAvailability');
      expect(result.results.map((r) => [r.name, r.available])).to.deep.equal([
        [free, true],
        [held.name, false],
      ]);
    });

    it('checks an internationalised name as punycode', async () => {
      const free = subject.freshName();
      const [label, ...rest] = free.split('.');
      const idn = `Bücher-${label}.${rest.join('.')}`;
      const result = ok(await reg.checkAvailability({ operationId: opId(), names: [idn] }), 'checkAvailability IDN');
      expect(result.results).to.have.length(1);
      expect(result.results[0].name).to.equal(domainToASCII(idn)).and.match(/^xn--bcher-/);
      expect(result.results[0].available).to.equal(true);
    });

    it('answers a name that is not a domain name with a failure INVALID_NAME, not a throw', async () => {
      refused(await reg.checkAvailability({ operationId: opId(), names: ['not a name'] }), 'check of a bad name', 'INVALID_NAME');
      refused(await reg.register({ operationId: opId(), name: 'nodot', years: 1, contacts: CONTRACT_CONTACTS }), 'register of a bad name', 'INVALID_NAME');
      refused(await reg.getInfo({ operationId: opId(), name: '-bad-.example' }), 'info of a bad name', 'INVALID_NAME');
    });

    it('answers a call without an operation id with a failure, not a throw', async () => {
      const outcome = await reg.getInfo({ name: subject.freshName() } as never);
      expect(refused(outcome, 'info without operationId').retryable).to.equal(false);
    });

    it('registers a name for some years; getInfo shows it active, unlocked, with its nameservers and that expiry', async () => {
      const { name, expiresAt } = await registered(2);
      const info = ok(await reg.getInfo({ operationId: opId(), name }), 'getInfo');
      expect(info.name).to.equal(name);
      expect(info.state).to.equal('active');
      expect(info.locked).to.equal(false);
      expect([...info.nameservers].sort()).to.deep.equal(NS);
      expect(day(info.expiresAt)).to.equal(day(expiresAt));
      expect(yearOf(info.expiresAt) - yearOf(info.createdAt ?? new Date().toISOString())).to.equal(2);
      expect(info.registryStatuses).to.be.an('array');
    });

    it('registers once when the same operation id comes twice: the same answer, one registration', async () => {
      const name = subject.freshName();
      const req = { operationId: opId(), name, years: 1, nameservers: NS, contacts: CONTRACT_CONTACTS };
      const first = ok(await reg.register(req), 'register');
      const again = ok(await reg.register({ ...req }), 'register (repeated)');
      expect(again).to.deep.equal(first);
      const n = await performedCount(registerAction, req.operationId);
      if (n !== null) expect(n, 'registrations performed for one operation id').to.equal(1);
    });

    it('answers two concurrent registrations with one operation id alike, registering once', async () => {
      const name = subject.freshName();
      const req = { operationId: opId(), name, years: 1, contacts: CONTRACT_CONTACTS };
      const [a, b] = await Promise.all([reg.register(req), reg.register({ ...req })]);
      expect(ok(a, 'register (first)')).to.deep.equal(ok(b, 'register (concurrent)'));
      const n = await performedCount(registerAction, req.operationId);
      if (n !== null) expect(n, 'registrations performed for one operation id').to.equal(1);
    });

    it('refuses to register a name already held, with OBJECT_EXISTS that is not retryable', async () => {
      const { name } = await registered();
      const f = refused(await reg.register({ operationId: opId(), name, years: 1, contacts: CONTRACT_CONTACTS }), 'register of a held name', 'OBJECT_EXISTS');
      expect(f.retryable).to.equal(false);
    });

    it('renews by whole years from the current expiry, once per operation id', async () => {
      const { name, expiresAt } = await registered(1);
      const req = { operationId: opId(), name, years: 2, currentExpiresAt: expiresAt };
      const renewed = ok(await reg.renew(req), 'renew');
      expect(yearOf(renewed.expiresAt) - yearOf(expiresAt)).to.equal(2);
      expect(ok(await reg.renew({ ...req }), 'renew (repeated)')).to.deep.equal(renewed);
      const info = ok(await reg.getInfo({ operationId: opId(), name }), 'getInfo after renew');
      expect(day(info.expiresAt)).to.equal(day(renewed.expiresAt));
      const n = await performedCount(renewAction, req.operationId);
      if (n !== null) expect(n, 'renewals performed for one operation id').to.equal(1);
    });

    it('refuses a renewal whose currentExpiresAt is not the current expiry (a renewal made already): POLICY_ERROR', async () => {
      const { name, expiresAt } = await registered(1);
      ok(await reg.renew({ operationId: opId(), name, years: 1, currentExpiresAt: expiresAt }), 'renew');
      const f = refused(await reg.renew({ operationId: opId(), name, years: 1, currentExpiresAt: expiresAt }), 'renew with the old expiry', 'POLICY_ERROR');
      expect(f.retryable).to.equal(false);
      const info = ok(await reg.getInfo({ operationId: opId(), name }), 'getInfo');
      expect(yearOf(info.expiresAt) - yearOf(expiresAt), 'renewed once').to.equal(1);
    });

    it('renews without being told the current expiry', async () => {
      const { name, expiresAt } = await registered(1);
      const renewed = ok(await reg.renew({ operationId: opId(), name, years: 1 }), 'renew');
      expect(yearOf(renewed.expiresAt) - yearOf(expiresAt)).to.equal(1);
    });

    it('replaces the nameservers, normalised', async () => {
      const { name } = await registered();
      const wanted = ['NS1.Other-DNS.example', 'ns3.contract-dns.example'];
      const result = ok(await reg.setNameservers({ operationId: opId(), name, nameservers: wanted }), 'setNameservers');
      expect([...result.nameservers].sort()).to.deep.equal(['ns1.other-dns.example', 'ns3.contract-dns.example']);
      const info = ok(await reg.getInfo({ operationId: opId(), name }), 'getInfo');
      expect([...info.nameservers].sort()).to.deep.equal(['ns1.other-dns.example', 'ns3.contract-dns.example']);
    });

    it('locks and unlocks a domain', async () => {
      const { name } = await registered();
      expect(ok(await reg.setLock({ operationId: opId(), name, locked: true }), 'lock')).to.deep.equal({ locked: true });
      expect(ok(await reg.getInfo({ operationId: opId(), name }), 'info locked').locked).to.equal(true);
      expect(ok(await reg.setLock({ operationId: opId(), name, locked: false }), 'unlock')).to.deep.equal({ locked: false });
      expect(ok(await reg.getInfo({ operationId: opId(), name }), 'info unlocked').locked).to.equal(false);
    });

    it('gives the auth code of a domain it holds', async () => {
      const { name } = await registered();
      const { authCode } = ok(await reg.getAuthCode({ operationId: opId(), name }), 'getAuthCode');
      expect(authCode).to.be.a('string').and.not.equal('');
    });

    it('reads and replaces the contacts', async () => {
      const { name } = await registered();
      const contacts = ok(await reg.getContacts({ operationId: opId(), name }), 'getContacts');
      expect(contacts.registrant).to.deep.include({ name: 'Ada Contract', email: 'ada@contract.example', city: 'Testville', countryCode: 'US' });
      const next: DomainContacts = { registrant: { ...CONTRACT_CONTACTS.registrant, name: 'Bea Buyer', email: 'bea@contract.example' } };
      ok(await reg.setContacts({ operationId: opId(), name, contacts: next }), 'setContacts');
      const after = ok(await reg.getContacts({ operationId: opId(), name }), 'getContacts after');
      expect(after.registrant).to.deep.include({ name: 'Bea Buyer', email: 'bea@contract.example' });
    });

    it('syncs many names: state and expiry of those it holds, found: false for the others', async () => {
      const a = await registered(1);
      const b = await registered(3);
      const stranger = subject.freshName();
      const { domains } = ok(await reg.sync({ operationId: opId(), names: [a.name, stranger, b.name] }), 'sync');
      expect(domains.map((d) => [d.name, d.found, d.state, d.expiresAt && day(d.expiresAt)])).to.deep.equal([
        [a.name, true, 'active', day(a.expiresAt)],
        [stranger, false, undefined, undefined],
        [b.name, true, 'active', day(b.expiresAt)],
      ]);
    });

    it('deletes a registration just made (grace period): the name is free again', async () => {
      const { name } = await registered();
      ok(await reg.delete({ operationId: opId(), name }), 'delete');
      refused(await reg.getInfo({ operationId: opId(), name }), 'info after delete', 'NOT_FOUND');
      const { results } = ok(await reg.checkAvailability({ operationId: opId(), names: [name] }), 'check after delete');
      expect(results[0].available).to.equal(true);
    });

    it('answers info, renew and delete of a name it never registered with NOT_FOUND, not a throw', async () => {
      const name = subject.freshName();
      refused(await reg.getInfo({ operationId: opId(), name }), 'info', 'NOT_FOUND');
      refused(await reg.renew({ operationId: opId(), name, years: 1 }), 'renew', 'NOT_FOUND');
      refused(await reg.delete({ operationId: opId(), name }), 'delete', 'NOT_FOUND');
    });

    it('answers pollTransfer of an operation it never saw with a failure', async () => {
      refused(await reg.pollTransfer({ operationId: opId(), name: subject.freshName() }), 'pollTransfer');
    });

    it('refuses a transfer with a wrong auth code: AUTHORIZATION_ERROR, not retryable', async function () {
      if (!subject.transferable) this.skip();
      const { name } = await subject.transferable!();
      const f = refused(await reg.transfer({ operationId: opId(), name, authCode: 'certainly-wrong-code' }), 'transfer with a wrong code', 'AUTHORIZATION_ERROR');
      expect(f.retryable).to.equal(false);
    });

    it('transfers a name in with its auth code: pending, polled with the same operation id until approved', async function () {
      if (!subject.transferable) this.skip();
      const { name, authCode } = await subject.transferable!();
      const operationId = opId();
      let outcome: Outcome<unknown> = await reg.transfer({ operationId, name, authCode, years: 1 });
      expectWellFormed(outcome, 'transfer');
      if (outcome.status === 'pending') {
        const again = await reg.transfer({ operationId, name, authCode, years: 1 });
        expect(again.status, 'the same transfer repeated while pending').to.equal('pending');
      }
      for (let polls = 0; outcome.status === 'pending'; polls++) {
        expect(polls, `still pending after ${maxPolls} polls`).to.be.below(maxPolls);
        outcome = await reg.pollTransfer({ operationId, name });
        expectWellFormed(outcome, `pollTransfer ${polls + 1}`);
      }
      const done = ok(outcome as Outcome<{ name: string; transferStatus: string }>, 'transfer settled');
      expect(done).to.deep.include({ name, transferStatus: 'approved' });
      const info = ok(await reg.getInfo({ operationId: opId(), name }), 'info after the transfer');
      expect(info.name).to.equal(name);
    });

    it('answers a connection test with success and a message', async () => {
      const message = ok(await reg.testConnection(), 'testConnection').message;
      expect(message).to.be.a('string').and.not.equal('');
    });
  });
}
