import type { Domain } from '../../domains/domains-service';
import { AppError, isAppError } from '../../domain/errors';
import type { DomainItemAction } from '../../orders/domain-items';
import type { Services } from '../../services';
import type { SoapOperation } from './soap-mount';
import { bool, compact, dateTime, decimal, int, list, text } from './wire';

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
    autoRenew: d.autoRenew,
  });
}

const ref = (a: Args) => ({ domainId: int(a.domainId, 'domainId'), name: text(a.name) });

/** The order of one domain item (RegisterDomain, TransferDomain: a sales order; RenewDomain: a renewal order). */
function domainOrder(services: Services, action: DomainItemAction): SoapOperation {
  return write(async (a, actor) => {
    const nameservers = a.nameservers === undefined || a.nameservers === null ? undefined : list<unknown>(a.nameservers, 'nameserver').map((n) => text(n) ?? '');
    const years = int(a.years, 'years');
    // The request's own field names in errors: eppCode, not the order's domains[0].eppCode.
    const input = {
      accountId: int(a.accountId, 'accountId') as number,
      items: [],
      domains: [{ action, name: text(a.name) ?? '', years: years ?? undefined, nameservers, eppCode: action === 'transfer' ? text(a.eppCode) : undefined }],
      ipAddress: actor.remoteAddr,
      idempotencyKey: text(a.idempotencyKey),
    };
    const order = await services.orders.place(actor, input, action === 'renew' ? 'renewal' : 'sales').catch((e: unknown) => {
      if (isAppError(e) && e.field?.startsWith('domains[0].')) throw new AppError(e.code, e.message, e.field.slice('domains[0].'.length));
      throw e;
    });
    return { orderId: order.orderId };
  });
}

/** ProvisioningService's domain operations: checks, reads and lists, nameservers and auto-renew, and the orders that register, transfer and renew. */
export function domainOperations(services: Services): Record<string, SoapOperation> {
  const { domains } = services;
  return {
    RegisterDomain: domainOrder(services, 'register'),
    TransferDomain: domainOrder(services, 'transfer'),
    RenewDomain: domainOrder(services, 'renew'),
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
    ListDomains: read(async (a, actor) => {
      // The service checks status against DomainStatus, scopes accountId (NOT_FOUND outside the caller's subtree) and pages.
      const r = await domains.list(actor, {
        accountId: int(a.accountId, 'accountId'),
        status: text(a.status)?.trim() || undefined,
        nameContains: text(a.name),
        page: int(a.page, 'page'),
        pageSize: int(a.pageSize, 'pageSize'),
      });
      return { domains: { domain: r.items.map(domainWire) }, total: r.total };
    }),
    SetNameservers: write(async (a, actor) => {
      const hosts = list<unknown>(a.nameservers, 'nameserver').map((n) => text(n));
      return { domain: domainWire(await domains.setNameservers(actor, ref(a), hosts)) };
    }),
    SetDomainAutoRenew: write(async (a, actor) => ({
      domain: domainWire(await domains.setAutoRenew(actor, ref(a), bool(a.autoRenew, 'autoRenew'), { idempotencyKey: text(a.idempotencyKey) })),
    })),
    GetEppCode: write(async (a, actor) => ({ eppCode: await domains.getEppCode(actor, ref(a)) })),
  };
}
