import type { Domain } from '../../domains/domains-service';
import type { Services } from '../../services';
import type { SoapOperation } from './soap-mount';
import { compact, dateTime, decimal, int, list, text } from './wire';

type Args = Record<string, unknown>;
const read = (run: SoapOperation['run']): SoapOperation => ({ mutating: false, run });
const write = (run: SoapOperation['run']): SoapOperation => ({ mutating: true, run });

/** The WSDL's Domain, in its sequence order. */
export function domainWire(d: Domain) {
  return compact({
    domainId: d.domainId,
    name: d.name,
    accountId: d.accountId,
    status: d.status,
    expiresAt: d.expiresAt ? dateTime(d.expiresAt) : undefined,
    nameservers: { nameserver: d.nameservers },
  });
}

const ref = (a: Args) => ({ domainId: int(a.domainId, 'domainId'), name: text(a.name) });

/** ProvisioningService's read-side domain operations (RegisterDomain, TransferDomain, RenewDomain come with orders). */
export function domainOperations(services: Services): Record<string, SoapOperation> {
  const { domains } = services;
  return {
    CheckDomain: read(async (a, actor) => {
      const names = list<unknown>(a.names, 'name').map((n) => text(n));
      const results = await domains.check(actor, names);
      return {
        results: {
          result: results.map((r) =>
            compact({ name: r.name, available: r.available, price: r.price !== undefined && r.currency ? decimal(r.price, r.currency) : undefined, currency: r.price !== undefined ? r.currency : undefined }),
          ),
        },
      };
    }),
    GetDomain: read(async (a, actor) => ({ domain: domainWire(await domains.get(actor, ref(a))) })),
    SetNameservers: write(async (a, actor) => {
      const hosts = list<unknown>(a.nameservers, 'nameserver').map((n) => text(n));
      return { domain: domainWire(await domains.setNameservers(actor, ref(a), hosts)) };
    }),
    GetEppCode: write(async (a, actor) => ({ eppCode: await domains.getEppCode(actor, ref(a)) })),
  };
}
