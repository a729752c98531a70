import type { AppError } from '../../domain/errors';
import { isClientFault } from '../api-errors';

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

function detailXml(err: AppError, ns: string): string {
  return (
    `<tns:Error xmlns:tns="${ns}"><tns:code>${err.code}</tns:code><tns:message>${escapeXml(err.message)}</tns:message>` +
    (err.field ? `<tns:field>${escapeXml(err.field)}</tns:field>` : '') +
    `</tns:Error>`
  );
}

/** The fault node-soap serializes: SOAP 1.1 faultcode/faultstring and detail/tns:Error{code, message, field}. */
export function soapFault(err: AppError, ns: string) {
  return {
    Fault: {
      faultcode: isClientFault(err.code) ? 'soap:Client' : 'soap:Server',
      faultstring: err.message,
      detail: { $xml: detailXml(err, ns) },
      statusCode: 500,
    },
  };
}

/** A whole fault envelope, for refusals made before the request reaches node-soap. */
export function soapFaultEnvelope(err: AppError, ns: string): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>' +
    `<faultcode>${isClientFault(err.code) ? 'soap:Client' : 'soap:Server'}</faultcode>` +
    `<faultstring>${escapeXml(err.message)}</faultstring>` +
    `<detail>${detailXml(err, ns)}</detail>` +
    '</soap:Fault></soap:Body></soap:Envelope>'
  );
}
