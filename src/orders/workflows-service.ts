import type { Actor, Deps } from '../context';
import { recordChange } from '../audit/record-change';
import { ancestorIds, scopedAccount, scopedVendor, type AccountRow } from '../accounts/scope';
import { isSqlite, toBool, toNumber, type Conn } from '../db/knex';
import { inTransaction } from '../db/transaction';
import { invalid, notAllowed, notFound } from '../domain/errors';
import { oneOf, positiveId } from '../domain/fields';
import { ORDER_TYPES, defaultWorkflow, validateWorkflow, type OrderType, type WorkflowDefinition } from '../domain/workflow';
import { isUniqueViolation } from '../idempotency';

export interface Workflow {
  workflowId: number;
  vendorAccountId: number;
  orderType: OrderType;
  version: number;
  active: boolean;
  definition: WorkflowDefinition;
  createdAt: Date;
}

interface WorkflowRow {
  id: number;
  vendor_id: number;
  order_type: string;
  version: number;
  definition: string;
  active: unknown;
  created_at: number;
}

function view(row: WorkflowRow): Workflow {
  return {
    workflowId: toNumber(row.id),
    vendorAccountId: toNumber(row.vendor_id),
    orderType: row.order_type as OrderType,
    version: toNumber(row.version),
    active: toBool(row.active),
    definition: JSON.parse(row.definition) as WorkflowDefinition,
    createdAt: new Date(toNumber(row.created_at)),
  };
}

/**
 * Workflows kept as data, versioned per vendor and order type. New orders take the active version of the
 * nearest vendor up the tree that has one (falling back to the provider's default); an order keeps its version.
 */
export class WorkflowsService {
  constructor(private readonly deps: Deps) {}

  /** The workflow a new order of this vendor gets: its own, else the nearest ancestor's, else the provider's default. */
  async activeFor(conn: Conn, vendorId: number, orderType: OrderType): Promise<Workflow> {
    const type = oneOf(orderType, 'type', ORDER_TYPES);
    const vendor = (await conn('accounts').where({ id: vendorId }).first('id', 'path')) as Pick<AccountRow, 'id' | 'path'> | undefined;
    if (!vendor) throw notFound('Account', vendorId);
    const chain = [toNumber(vendor.id), ...ancestorIds(vendor.path)];
    const rows = (await conn('workflows').whereIn('vendor_id', chain).andWhere({ order_type: type, active: true }).orderBy('version', 'desc')) as WorkflowRow[];
    for (const id of chain) {
      const row = rows.find((r) => toNumber(r.vendor_id) === id);
      if (row) return view(row);
    }
    // First use: the provider (root of the tree) gets version 1 of the default.
    const providerId = chain[chain.length - 1]!;
    const row = {
      vendor_id: providerId,
      order_type: type,
      version: 1,
      definition: JSON.stringify(defaultWorkflow(type)),
      active: true,
      created_at: this.deps.clock.now().getTime(),
    };
    try {
      await conn('workflows').insert(row);
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
    }
    // A concurrent first use may have inserted it; a locking read sees that row past our snapshot.
    const q = conn('workflows').where({ vendor_id: providerId, order_type: type, active: true }).orderBy('version', 'desc').first();
    const created = (await (isSqlite(conn) ? q : q.forShare())) as WorkflowRow | undefined;
    if (!created) throw new Error(`No active ${type} workflow for provider ${providerId}`);
    return view(created);
  }

  /** Stores a new version of a vendor's workflow for an order type; it becomes the active one, earlier ones stay. */
  async define(actor: Actor, input: { vendorAccountId?: number; orderType: string; definition: unknown }): Promise<Workflow> {
    const vendor = await scopedVendor(this.deps.db, actor, input.vendorAccountId, 'run order workflows');
    if (!actor.roles.includes('admin')) throw notAllowed('Only an administrator may define workflows.');
    const orderType = oneOf(input.orderType, 'orderType', ORDER_TYPES);
    const definition = validateWorkflow(input.definition);
    if (definition.orderType !== orderType) throw invalid('definition.orderType', `The definition is for ${definition.orderType} orders, not ${orderType}.`);
    for (let attempt = 0; ; attempt++) {
      try {
        return await inTransaction(this.deps.db, async (tx) => {
          const now = this.deps.clock.now();
          const last = (await tx('workflows').where({ vendor_id: vendor.id, order_type: orderType }).max({ v: 'version' }).first()) as { v: unknown } | undefined;
          const version = toNumber(last?.v) + 1;
          await tx('workflows').where({ vendor_id: vendor.id, order_type: orderType }).update({ active: false });
          const [id] = (await tx('workflows').insert({
            vendor_id: vendor.id,
            order_type: orderType,
            version,
            definition: JSON.stringify(definition),
            active: true,
            created_at: now.getTime(),
          })) as number[];
          await recordChange(tx, actor, now, {
            operation: 'DefineWorkflow',
            objectType: 'workflow',
            objectId: id,
            details: { vendorAccountId: vendor.id, orderType, version },
            event: { name: 'workflow.defined', accountId: vendor.id, payload: { workflowId: id, vendorAccountId: vendor.id, orderType, version } },
          });
          return view((await tx('workflows').where({ id }).first()) as WorkflowRow);
        });
      } catch (e) {
        // Two definitions at once took the same version number: the later one tries again with the next.
        if (!isUniqueViolation(e) || attempt >= 3) throw e;
      }
    }
  }

  async get(actor: Actor, workflowId: number): Promise<Workflow> {
    const id = positiveId(workflowId, 'workflowId');
    const row = (await this.deps.db('workflows as w')
      .join('accounts as a', 'a.id', 'w.vendor_id')
      .where('w.id', id)
      .andWhere('a.path', 'like', `${actor.accountPath}%`)
      .first('w.*')) as WorkflowRow | undefined;
    if (!row) throw notFound('Workflow', id);
    return view(row);
  }

  /** The workflow versions of the vendors in the actor's subtree (or of one of them), newest first per type. */
  async list(actor: Actor, vendorId?: number): Promise<Workflow[]> {
    const q = this.deps.db('workflows as w').join('accounts as a', 'a.id', 'w.vendor_id').select('w.*');
    if (vendorId !== undefined && vendorId !== null) {
      const vendor = await scopedAccount(this.deps.db, actor, positiveId(vendorId, 'vendorId'));
      q.where('w.vendor_id', vendor.id);
    } else {
      q.where('a.path', 'like', `${actor.accountPath}%`);
    }
    const rows = (await q.orderBy([{ column: 'w.vendor_id' }, { column: 'w.order_type' }, { column: 'w.version', order: 'desc' }])) as WorkflowRow[];
    return rows.map(view);
  }
}
