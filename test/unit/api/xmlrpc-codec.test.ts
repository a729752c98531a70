import { expect } from 'chai';
import { AppError } from '../../../src/domain/errors';
import {
  parseMethodCall, parseMethodResponse, serializeFault, serializeMethodCall, serializeResponse, XmlRpcDouble,
  type XmlRpcValue,
} from '../../../src/api/xmlrpc/codec';

// Returns the AppError thrown by fn (fails if none), after checking its code and field.
function appError(fn: () => unknown, code: string, field?: string): AppError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an AppError').to.be.instanceOf(AppError);
  const err = caught as AppError;
  expect(err.code).to.equal(code);
  if (field !== undefined) expect(err.field).to.equal(field);
  return err;
}

// A methodCall named Execute whose parameters are the given <value> bodies.
function call(...values: string[]): string {
  const params = values.map((v) => `<param><value>${v}</value></param>`).join('');
  return `<?xml version="1.0"?>\n<methodCall>\n  <methodName>Execute</methodName>\n  <params>${params}</params>\n</methodCall>`;
}

// Decodes one <value> body through a real methodCall.
function decode(valueBody: string): XmlRpcValue {
  return parseMethodCall(call(valueBody)).params[0];
}

// The text between <value> and </value> of the single response parameter.
function encoded(value: XmlRpcValue): string {
  const xml = serializeResponse(value);
  const start = xml.indexOf('<param><value>') + '<param><value>'.length;
  return xml.slice(start, xml.lastIndexOf('</value></param>'));
}

function roundTrip(value: XmlRpcValue): XmlRpcValue {
  return parseMethodCall(serializeMethodCall('Execute', [value])).params[0];
}

describe('api/xmlrpc/codec', () => {
  describe('parseMethodCall', () => {
    it('reads the method name and the positional parameters of a PBA Execute call', () => {
      const xml = call(
        '<struct><member><name>Server</name><value><string>BM</string></value></member>' +
          '<member><name>Method</name><value>AccountDetailsGet_API</value></member>' +
          '<member><name>Params</name><value><array><data><value><i4>1000001</i4></value></data></array></value></member>' +
          '</struct>',
      );
      const parsed = parseMethodCall(xml);
      expect(parsed.methodName).to.equal('Execute');
      expect(parsed.params).to.deep.equal([{ Server: 'BM', Method: 'AccountDetailsGet_API', Params: [1000001] }]);
    });

    it('reads a call without <params> as no parameters', () => {
      expect(parseMethodCall('<methodCall><methodName>GetVersion_API</methodName></methodCall>')).to.deep.equal({
        methodName: 'GetVersion_API',
        params: [],
      });
    });
  });

  describe('decoding each type', () => {
    it('decodes <i4> and <int> to numbers, the integer NULL -2147483648 included', () => {
      expect(decode('<i4>42</i4>')).to.equal(42);
      expect(decode('<int> -7 </int>')).to.equal(-7);
      expect(decode('<i4>-2147483648</i4>')).to.equal(-2147483648);
      expect(decode('<i4>2147483647</i4>')).to.equal(2147483647);
    });

    it('decodes <i8> to a number when it is a safe integer and to a bigint otherwise', () => {
      expect(decode('<i8>9007199254740991</i8>')).to.equal(9007199254740991);
      expect(decode('<i8>9007199254740993</i8>')).to.equal(9007199254740993n);
      expect(decode('<i8>-9223372036854775808</i8>')).to.equal(-9223372036854775808n);
    });

    it('decodes <double> to an XmlRpcDouble that keeps the exact wire text, 12345678901234567.89 included', () => {
      const d = decode('<double> 12345678901234567.89 </double>');
      expect(d).to.be.instanceOf(XmlRpcDouble);
      expect((d as XmlRpcDouble).text).to.equal('12345678901234567.89');
      expect((d as XmlRpcDouble).value).to.equal(12345678901234567.89);
      expect((decode('<double>-0.10</double>') as XmlRpcDouble).text).to.equal('-0.10');
      expect((decode('<double>1e+16</double>') as XmlRpcDouble).value).to.equal(1e16);
    });

    it('decodes <boolean> 1 and 0 to true and false', () => {
      expect(decode('<boolean>1</boolean>')).to.equal(true);
      expect(decode('<boolean>0</boolean>')).to.equal(false);
    });

    it('decodes <string> and untyped values to strings, keeping their white space', () => {
      expect(decode('<string>  two  spaces  </string>')).to.equal('  two  spaces  ');
      expect(decode('  untyped  ')).to.equal('  untyped  ');
      expect(decode('<string>   </string>')).to.equal('   ');
      expect(decode('<string/>')).to.equal('');
      expect(decode('')).to.equal('');
      expect(decode('<string>a &amp; b &lt;c&gt; &#13;&#10;</string>')).to.equal('a & b <c> \r\n');
      expect(decode('<string><![CDATA[<b>raw</b>]]></string>')).to.equal('<b>raw</b>');
    });

    it('decodes <dateTime.iso8601> in the basic and extended forms, with or without an offset, to UTC', () => {
      const expected = Date.UTC(1998, 6, 17, 14, 8, 55);
      expect((decode('<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>') as Date).getTime()).to.equal(expected);
      expect((decode('<dateTime.iso8601>1998-07-17T14:08:55Z</dateTime.iso8601>') as Date).getTime()).to.equal(expected);
      expect((decode('<dateTime.iso8601>1998-07-17T16:08:55+02:00</dateTime.iso8601>') as Date).getTime()).to.equal(expected);
      expect((decode('<dateTime.iso8601>19980717T09:08:55-0500</dateTime.iso8601>') as Date).getTime()).to.equal(expected);
      expect((decode('<dateTime.iso8601>19980717T140855</dateTime.iso8601>') as Date).getTime()).to.equal(expected);
    });

    it('decodes <base64> to a Buffer, ignoring line breaks', () => {
      const b = decode('<base64>aGVsbG8g\nd29ybGQ=</base64>');
      expect(Buffer.isBuffer(b)).to.equal(true);
      expect((b as Buffer).toString('utf8')).to.equal('hello world');
      expect((decode('<base64></base64>') as Buffer).length).to.equal(0);
    });

    it('decodes <nil/> to null', () => {
      expect(decode('<nil/>')).to.equal(null);
    });

    it('decodes arrays and structs, nested, into arrays and plain objects', () => {
      const v = decode(
        '<array><data><value><i4>1</i4></value><value><struct>' +
          '<member><name>a</name><value><array><data/></array></value></member>' +
          '<member><name>b</name><value><struct/></value></member>' +
          '</struct></value></data></array>',
      );
      expect(v).to.deep.equal([1, { a: [], b: {} }]);
      expect(Object.getPrototypeOf((v as XmlRpcValue[])[1])).to.equal(Object.prototype);
    });
  });

  describe('encoding each type', () => {
    it('writes integers within int32 as <i4>, the integer NULL -2147483648 included', () => {
      expect(encoded(0)).to.equal('<i4>0</i4>');
      expect(encoded(-2147483648)).to.equal('<i4>-2147483648</i4>');
      expect(encoded(2147483647)).to.equal('<i4>2147483647</i4>');
    });

    it('writes any other finite number as a <double> in plain decimal, never in exponent notation', () => {
      expect(encoded(2147483648)).to.equal('<double>2147483648</double>');
      expect(encoded(0.1)).to.equal('<double>0.1</double>');
      expect(encoded(-12.5)).to.equal('<double>-12.5</double>');
      expect(encoded(1e21)).to.equal('<double>1000000000000000000000</double>');
      expect(encoded(1.5e-7)).to.equal('<double>0.00000015</double>');
      expect(encoded(-1.2345e25)).to.equal('<double>-12345000000000000000000000</double>');
      for (const n of [1e21, 1.5e-7, -1.2345e25, 5e-324, Number.MAX_VALUE, 123.456e-10]) {
        const text = encoded(n).replace(/<\/?double>/g, '');
        expect(text).not.to.match(/e/i);
        expect(Number(text)).to.equal(n);
      }
    });

    it('writes an XmlRpcDouble with its own text', () => {
      expect(encoded(new XmlRpcDouble('12345678901234567.89'))).to.equal('<double>12345678901234567.89</double>');
      expect(encoded(new XmlRpcDouble('10.50'))).to.equal('<double>10.50</double>');
    });

    it('writes a bigint as <i8>', () => {
      expect(encoded(9223372036854775807n)).to.equal('<i8>9223372036854775807</i8>');
    });

    it('writes strings escaped, carriage returns as references, and drops characters XML 1.0 does not allow', () => {
      expect(encoded('a & b <c> ]]>')).to.equal('<string>a &amp; b &lt;c&gt; ]]&gt;</string>');
      expect(encoded('line\r\nnext\ttab')).to.equal('<string>line&#13;\nnext\ttab</string>');
      expect(encoded('nul\u0000 bell\u0007 lone\uD800 \uFFFF end')).to.equal('<string>nul bell lone  end</string>');
    });

    it('writes booleans as 1 and 0', () => {
      expect(encoded(true)).to.equal('<boolean>1</boolean>');
      expect(encoded(false)).to.equal('<boolean>0</boolean>');
    });

    it('writes a Date as YYYYMMDDTHH:MM:SS in UTC', () => {
      expect(encoded(new Date('1998-07-17T16:08:55.750+02:00'))).to.equal('<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>');
    });

    it('writes a Buffer as <base64>', () => {
      expect(encoded(Buffer.from('hello world'))).to.equal('<base64>aGVsbG8gd29ybGQ=</base64>');
    });

    it('writes null and undefined as <nil/>', () => {
      expect(encoded(null)).to.equal('<nil/>');
      expect(encoded(undefined)).to.equal('<nil/>');
    });

    it('writes arrays and the own enumerable members of plain objects', () => {
      const proto = { inherited: 1 };
      const obj = Object.create(proto) as Record<string, XmlRpcValue>;
      Object.defineProperty(obj, 'hidden', { value: 2, enumerable: false });
      obj.own = 3;
      expect(encoded([1, 'x'])).to.equal('<array><data><value><i4>1</i4></value><value><string>x</string></value></data></array>');
      expect(encoded({ a: 1 })).to.equal('<struct><member><name>a</name><value><i4>1</i4></value></member></struct>');
      expect(encoded(Object.assign(Object.create(null), { own: 3 }))).to.include('<name>own</name>');
      // an object with a non-Object prototype is not a plain object
      appError(() => encoded(obj), 'INTERNAL', 'result');
    });

    it('refuses values it cannot encode, naming where they are', () => {
      appError(() => encoded([1, Number.NaN]), 'INTERNAL', 'result[1]');
      appError(() => encoded({ a: { b: Infinity } }), 'INTERNAL', 'result.a.b');
      appError(() => encoded({ f: (() => 1) as unknown as XmlRpcValue }), 'INTERNAL', 'result.f');
      appError(() => encoded(new Map() as unknown as XmlRpcValue), 'INTERNAL', 'result');
      appError(() => encoded(2n ** 63n), 'INTERNAL', 'result');
      const loop: XmlRpcValue[] = [];
      loop.push(loop);
      appError(() => encoded(loop), 'INTERNAL', 'result[0]');
    });

    it('wraps a response in a full methodResponse document', () => {
      const xml = serializeResponse({ Result: [[1, 'Operation done.']] });
      expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><methodResponse><params><param><value>')).to.equal(true);
      expect(xml.endsWith('</value></param></params></methodResponse>')).to.equal(true);
      expect(parseMethodResponse(xml)).to.deep.equal({ value: { Result: [[1, 'Operation done.']] } });
    });
  });

  describe('round trips', () => {
    it('brings back nested structs and arrays of every type unchanged', () => {
      const value: XmlRpcValue = {
        Server: 'BM',
        Method: 'PlaceOrderAndAuthorize_API',
        Params: [
          1000001, -2147483648, 2 ** 40, 9007199254740993n, true, false, null, 'text', '',
          new XmlRpcDouble('12345678901234567.89'), new Date(Date.UTC(2026, 10, 24, 15, 30, 0)), Buffer.from([0, 255, 10]),
          [[], [1, [2, [3]]], { deep: { deeper: { deepest: ['x'] } } }],
        ],
        Empty: {},
      };
      const back = roundTrip(value) as Record<string, XmlRpcValue>;
      const params = back.Params as XmlRpcValue[];
      expect(params[2]).to.be.instanceOf(XmlRpcDouble); // 2^40 goes out as a double
      expect((params[2] as XmlRpcDouble).value).to.equal(2 ** 40);
      expect((params[9] as XmlRpcDouble).text).to.equal('12345678901234567.89');
      expect(params.filter((_, k) => k !== 2 && k !== 9)).to.deep.equal(
        (value.Params as XmlRpcValue[]).filter((_, k) => k !== 2 && k !== 9),
      );
      expect(back.Empty).to.deep.equal({});
      expect(Object.keys(back)).to.deep.equal(['Server', 'Method', 'Params', 'Empty']);
    });

    it('brings back unicode strings unchanged: accents, CJK, emoji, right-to-left, combining marks, CR LF and tabs', () => {
      const texts = ['Zürich Ærø', '東京都渋谷区', '👩‍💻🚀 emoji', 'مرحبا שלום', 'e\u0301 n\u0303', 'a\r\nb\rc\n\td', '\uFEFFbom'];
      expect(roundTrip(texts)).to.deep.equal(texts);
      expect(roundTrip({ 'clé ✓': 'värde' })).to.deep.equal({ 'clé ✓': 'värde' });
    });
  });

  describe('prototype pollution', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const polluting = (name: string) =>
      call(
        `<struct><member><name>${name}</name><value><struct>` +
          '<member><name>polluted</name><value><string>yes</string></value></member>' +
          '</struct></value></member></struct>',
      );

    afterEach(() => {
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).to.deep.equal(before);
      expect(Object.getPrototypeOf({})).to.equal(Object.prototype);
    });

    it('refuses a struct member named constructor or prototype on field "struct member"', () => {
      const err = appError(() => parseMethodCall(polluting('constructor')), 'INVALID_ARGUMENT', 'struct member');
      expect(err.message).to.match(/"constructor" \(at params\[0\]\) is not accepted/);
      appError(() => parseMethodCall(polluting('prototype')), 'INVALID_ARGUMENT', 'struct member');
      appError(() => parseMethodCall(call(`<array><data><value>${'<struct><member><name>prototype</name><value>1</value></member></struct>'}</value></data></array>`)), 'INVALID_ARGUMENT', 'struct member');
    });

    it('refuses a struct member named __proto__, however it is spelled, leaving every prototype unchanged', () => {
      appError(() => parseMethodCall(polluting('__proto__')), 'INVALID_ARGUMENT');
      appError(() => parseMethodCall(polluting('&#95;_proto__')), 'INVALID_ARGUMENT');
      appError(() => parseMethodCall(polluting('<![CDATA[__proto__]]>')), 'INVALID_ARGUMENT');
      appError(() => parseMethodCall(polluting('__pro<!-- -->to__')), 'INVALID_ARGUMENT');
    });

    it('refuses elements named __proto__ or constructor before xml2js makes keys of them', () => {
      appError(() => parseMethodCall('<methodCall><methodName>x</methodName><__proto__><polluted>1</polluted></__proto__></methodCall>'), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall(call('<constructor>1</constructor>')), 'INVALID_ARGUMENT', 'xml');
    });
  });

  describe('faults', () => {
    it('writes faultCode as <i4> and faultString as the base64 of the UTF-8 message', () => {
      const message = 'Table Account does not contain row with ID 99999999.';
      const xml = serializeFault(3, message);
      expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><methodResponse><fault><value><struct>')).to.equal(true);
      expect(xml).to.include('<member><name>faultCode</name><value><i4>3</i4></value></member>');
      const b64 = /<name>faultString<\/name><value><string>([^<]*)<\/string>/.exec(xml)?.[1];
      expect(b64).to.equal(Buffer.from(message, 'utf8').toString('base64'));
      expect(Buffer.from(b64!, 'base64').toString('utf8')).to.equal(message);
    });

    it('reads a fault back, decoding the base64 faultString, unicode and markup included', () => {
      const message = 'Konto «München» <nicht> gefunden & 👀';
      expect(parseMethodResponse(serializeFault(-32600, message))).to.deep.equal({ fault: { faultCode: -32600, faultString: message } });
    });
  });

  describe('malformed input', () => {
    it('refuses a non-integer <i4> on the parameter that holds it', () => {
      const err = appError(() => parseMethodCall(call('<i4>abc</i4>')), 'INVALID_ARGUMENT', 'params[0]');
      expect(err.message).to.match(/<i4> must be an integer/);
    });

    it('refuses an out-of-range integer deep inside, naming the path such as params[0].Params[3]', () => {
      const xml = call(
        '<struct><member><name>Params</name><value><array><data>' +
          '<value>1</value><value>2</value><value>3</value><value><i4>2147483648</i4></value>' +
          '</data></array></value></member></struct>',
      );
      appError(() => parseMethodCall(xml), 'INVALID_ARGUMENT', 'params[0].Params[3]');
      appError(() => parseMethodCall(call('<i8>9223372036854775808</i8>')), 'INVALID_ARGUMENT', 'params[0]');
    });

    it('refuses malformed doubles, booleans, dates and base64 on their location', () => {
      appError(() => parseMethodCall(call('<i4>1</i4>', '<double>1,5</double>')), 'INVALID_ARGUMENT', 'params[1]');
      appError(() => parseMethodCall(call('<double>NaN</double>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<double>1e999</double>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<boolean>true</boolean>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<dateTime.iso8601>19980230T14:08:55</dateTime.iso8601>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<dateTime.iso8601>yesterday</dateTime.iso8601>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<base64>not base64!</base64>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('<nil>x</nil>')), 'INVALID_ARGUMENT', 'params[0]');
    });

    it('refuses an unknown type tag, naming it', () => {
      const err = appError(() => parseMethodCall(call('<float>1.5</float>')), 'INVALID_ARGUMENT', 'params[0]');
      expect(err.message).to.match(/Unknown XML-RPC type <float>/);
    });

    it('refuses a struct member without a name or without a value', () => {
      appError(() => parseMethodCall(call('<struct><member><value>1</value></member></struct>')), 'INVALID_ARGUMENT', 'params[0].member[0]');
      appError(() => parseMethodCall(call('<struct><member><name>a</name></member></struct>')), 'INVALID_ARGUMENT', 'params[0].a');
    });

    it('refuses a struct member that appears twice', () => {
      const xml = call('<struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct>');
      appError(() => parseMethodCall(xml), 'INVALID_ARGUMENT', 'params[0].a');
    });

    it('refuses a value holding two types, or text mixed with a type', () => {
      appError(() => parseMethodCall(call('<i4>1</i4><string>x</string>')), 'INVALID_ARGUMENT', 'params[0]');
      appError(() => parseMethodCall(call('text<i4>1</i4>')), 'INVALID_ARGUMENT', 'params[0]');
    });

    it('refuses XML that is not well-formed, a second root and a root other than methodCall, on field xml', () => {
      appError(() => parseMethodCall('<methodCall><methodName>x</methodName>'), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall('<methodCall><methodName>x</methodName></methodCall><methodCall/>'), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall('<methodCall><methodName>x</methodName></methodCall>trailing'), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall('<methodResponse/>'), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall(''), 'INVALID_ARGUMENT', 'xml');
      appError(() => parseMethodCall(call('<string>&unknown;</string>')), 'INVALID_ARGUMENT', 'xml');
    });

    it('runs the XML guard first: a DOCTYPE is refused before parsing', () => {
      const err = appError(() => parseMethodCall('<!DOCTYPE x [<!ENTITY a "b">]>' + call('&a;')), 'INVALID_ARGUMENT', 'xml');
      expect(err.message).to.match(/DOCTYPE/);
    });

    it('refuses a missing or invalid method name on field methodName', () => {
      appError(() => parseMethodCall('<methodCall><params/></methodCall>'), 'INVALID_ARGUMENT', 'methodName');
      appError(() => parseMethodCall('<methodCall><methodName>a b</methodName></methodCall>'), 'INVALID_ARGUMENT', 'methodName');
    });

    it('refuses to build an XmlRpcDouble from text that is not a finite decimal', () => {
      appError(() => new XmlRpcDouble('12.3.4'), 'INVALID_ARGUMENT', 'double');
      appError(() => new XmlRpcDouble('Infinity'), 'INVALID_ARGUMENT', 'double');
      appError(() => new XmlRpcDouble('1</double><i4>1'), 'INVALID_ARGUMENT', 'double');
    });
  });
});

describe('xmlrpc codec: white space between elements', () => {
  it('reads an empty array, an empty struct and no params the way Python xmlrpc.client writes them', () => {
    // Bytes as xmlrpc.client.dumps(({'Params': [], 'Opts': {}},), 'Execute') produces them.
    const xml =
      "<?xml version='1.0'?>\n<methodCall>\n<methodName>Execute</methodName>\n<params>\n<param>\n<value><struct>\n" +
      '<member>\n<name>Params</name>\n<value><array><data>\n</data></array></value>\n</member>\n' +
      '<member>\n<name>Opts</name>\n<value><struct>\n</struct></value>\n</member>\n' +
      '</struct></value>\n</param>\n</params>\n</methodCall>\n';
    const call = parseMethodCall(xml);
    expect(call.params).to.deep.equal([{ Params: [], Opts: {} }]);
    expect(parseMethodCall("<?xml version='1.0'?>\n<methodCall>\n<methodName>GetVersion</methodName>\n<params>\n</params>\n</methodCall>\n").params).to.deep.equal([]);
  });

  it('still refuses real text where elements belong', () => {
    expect(() => parseMethodCall('<methodCall><methodName>X</methodName><params><param><value><array><data>oops</data></array></value></param></params></methodCall>')).to.throw(/must hold elements/);
  });
});
