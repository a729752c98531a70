import type { MethodTable } from './method-table';
import { accountMethods } from './methods-accounts';
import { billingMethods } from './methods-billing';
import { catalogMethods } from './methods-catalog';
import { domainMethods } from './methods-domains';
import { eventMethods } from './methods-events';
import { lifecycleMethods } from './methods-lifecycle';
import { orderMethods } from './methods-orders';
import { usageMethods } from './methods-usage';

/** Every method the XML-RPC door answers, keyed "GATE.Method": the table the server serves (and docs/api/xmlrpc.md lists). */
export const XMLRPC_METHODS: MethodTable = {
  ...accountMethods,
  ...catalogMethods,
  ...orderMethods,
  ...eventMethods,
  ...lifecycleMethods,
  ...usageMethods,
  ...billingMethods,
  ...domainMethods,
};
