/**
 * Built-in notification templates (English), used when neither the vendor nor any vendor above it has its own.
 * Context: event {id, name, occurredAt, objectType, objectId, accountId}, payload (the event's), account
 * {id, companyName}, contact {firstName, lastName, email}, vendor {id, companyName}, params (extra values given
 * by a caller such as SendSubscriptionNotificationForUser_API).
 */
export interface TemplateText {
  subject: string;
  html: string;
  text: string;
}

const greeting = 'Dear {{ contact.firstName or account.companyName }},';
const signature = '{{ vendor.companyName }}';

function tpl(subject: string, body: string): TemplateText {
  return {
    subject,
    html: `<p>${greeting}</p>\n<p>${body}</p>\n<p>${signature}</p>\n`,
    text: `${greeting}\n\n${body.replace(/<[^>]+>/g, '')}\n\n${signature}\n`,
  };
}

export const BUILT_IN_TEMPLATES: Record<string, TemplateText> = {
  'order.placed': tpl('Order {{ payload.orderNumber }} received', 'We received your order {{ payload.orderNumber }} for {{ payload.total }} {{ payload.currency }} (minor units). We will let you know once it is ready.'),
  'order.provisioned': tpl('Order {{ payload.orderId }} is ready', 'Every service of your order {{ payload.orderId }} is provisioned and ready to use.'),
  'order.completed': tpl('Order {{ payload.orderId }} completed', 'Your order {{ payload.orderId }} is complete.'),
  'order.rejected': tpl('Order {{ payload.orderId }} was not accepted', 'Your order {{ payload.orderId }} was not accepted. {{ payload.comment }}'),
  'order.provisioning_failed': tpl('Order {{ payload.orderId }} could not be provisioned', 'We could not provision your order {{ payload.orderId }}; our staff has been told and will contact you.'),
  'invoice.issued': tpl('Invoice {{ payload.number or payload.documentId }}', 'Invoice {{ payload.number or payload.documentId }} for {{ payload.total }} {{ payload.currency }} (minor units) is issued and due on {{ payload.dueDate }}.'),
  'invoice.paid': tpl('Invoice {{ payload.number or payload.documentId }} paid', 'Thank you: invoice {{ payload.number or payload.documentId }} is paid.'),
  'payment.received': tpl('Payment received', 'We received your payment of {{ payload.amount }} {{ payload.currency }} (minor units). Thank you.'),
  'payment.declined': tpl('Your payment was declined', 'Your payment of {{ payload.amount }} {{ payload.currency }} (minor units) was declined: {{ payload.message }}. Please update your payment method.'),
  // Dunning notices, one per step (the billing run takes each step once per invoice).
  'subscription.graced': tpl('Invoice {{ payload.invoiceNumber }} is overdue', 'Invoice {{ payload.invoiceNumber }} is past its due date and unpaid. Please pay it to keep your service{% if payload.subscriptionIds | length > 1 %}s{% endif %} running; otherwise {% if payload.subscriptionIds | length > 1 %}they{% else %}it{% endif %} will be suspended.'),
  'subscription.suspended': tpl('Subscription {{ payload.subscriptionId }} suspended', 'Your subscription {{ payload.subscriptionId }} is suspended{% if payload.reason %} ({{ payload.reason }}){% endif %}.{% if payload.reason and \'non-payment\' in payload.reason %} Paying the invoice in full resumes it.{% endif %}'),
  'subscription.terminated': tpl('Subscription {{ payload.subscriptionId }} terminated', 'Your subscription {{ payload.subscriptionId }} is terminated and its service removed.'),
  'subscription.expiring': tpl('Subscription {{ payload.name or payload.subscriptionId }} expires in {{ payload.daysBefore }} day(s)', 'Your subscription {{ payload.name or payload.subscriptionId }} expires on {{ payload.expiresAt }}. Renew it to keep your service.'),
  'domain.expiring': tpl('Domain {{ payload.name }} expires in {{ payload.daysBefore }} day(s)', 'Your domain {{ payload.name }} expires on {{ payload.expiresAt }}. {% if payload.autoRenew %}It renews automatically: the renewal is invoiced before then.{% else %}Renew it to keep it.{% endif %}'),
  'domain.renewed': tpl('Domain {{ payload.name }} renewed', 'Your domain {{ payload.name }} is renewed; it now expires on {{ payload.expiresAt }}.'),
  'domain.renewal_failed': tpl('Domain {{ payload.name }} could not be renewed', 'The renewal of your domain {{ payload.name }} failed at the registrar: {{ payload.message }}. Our staff has been told.'),
  'usage.threshold_reached': tpl('Usage of {{ payload.resourceName or payload.resourceId }} at {{ payload.percent }}%', 'Your subscription {{ payload.subscriptionId }} has used {{ payload.percent }}% of its {{ payload.resourceName or payload.resourceId }} limit.'),
};
