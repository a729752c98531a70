/**
 * The XML-RPC codec builds its tree from sax events itself (src/api/xmlrpc/codec.ts buildTree) instead of through
 * xml2js, for speed. This compares the two on a corpus of well-formed, odd and broken documents, and on seeded
 * random mutations of a real call: same tree, same number of roots, same first error text.
 */
import { expect } from 'chai';
import { Parser, type ParserOptions } from 'xml2js';
import { buildTree, parseMethodCall, serializeMethodCall } from '../../../src/api/xmlrpc/codec';

// The options the codec used with xml2js before it built the tree itself.
const XML2JS_OPTIONS: ParserOptions = {
  async: false,
  strict: true,
  explicitRoot: true,
  explicitArray: true,
  ignoreAttrs: true,
  trim: false,
  normalize: false,
  normalizeTags: false,
  explicitCharkey: false,
  charkey: '_',
  emptyTag: '',
  includeWhiteChars: false,
  explicitChildren: false,
  xmlns: false,
};

function viaXml2js(xml: string): { results: unknown[]; errors: unknown[] } {
  const parser = new Parser(XML2JS_OPTIONS);
  const results: unknown[] = [];
  const errors: unknown[] = [];
  parser.on('end', (result: unknown) => results.push(result));
  parser.on('error', (error: unknown) => errors.push(error));
  try {
    parser.parseString(xml);
  } catch (error) {
    errors.push(error);
  }
  return { results, errors };
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

function expectSame(xml: string): void {
  const ours = buildTree(xml);
  const theirs = viaXml2js(xml);
  expect(ours.errors.length > 0, `error or not for ${JSON.stringify(xml)}`).to.equal(theirs.errors.length > 0);
  if (theirs.errors.length > 0) {
    expect(firstLine(ours.errors[0]), `first error for ${JSON.stringify(xml)}`).to.equal(firstLine(theirs.errors[0]));
    return;
  }
  expect(ours.results, `tree for ${JSON.stringify(xml)}`).to.deep.equal(theirs.results);
}

const CALL = serializeMethodCall('Execute', [
  { Server: 'BM', Method: 'AccountDetailsGet_API', Params: [1, 'a & b <c>', [], {}, null, true, new Date(0), Buffer.from('hi')], Username: 'admin', Password: 'pw' },
]);

const CORPUS = [
  CALL,
  '<?xml version="1.0"?><methodCall><methodName>x</methodName><params/></methodCall>',
  '<methodCall>\n  <methodName>x</methodName>\n  <params>\n    <param><value><array><data>\n</data></array></value></param>\n  </params>\n</methodCall>\n',
  '<methodCall><methodName>x</methodName><params><param><value>  untyped  </value></param></params></methodCall>',
  '<methodCall><methodName>x</methodName><params><param><value><string><![CDATA[ ]]></string></value></param></params></methodCall>',
  '<methodCall><methodName>x</methodName><params><param><value><string><![CDATA[<a>&]]>tail</string></value></param></params></methodCall>',
  '<methodCall><methodName>x</methodName><params><param><value>text<i4>1</i4>more</value></param></params></methodCall>',
  '<methodCall><methodName>x</methodName><params><param><value><i4>1</i4><i4>2</i4></value></param></params></methodCall>',
  '<methodCall><!-- c --><methodName>x<!-- c -->y</methodName><?pi data?></methodCall>',
  '<methodCall><methodName>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;</methodName></methodCall>',
  '\uFEFF<methodCall><methodName>bom</methodName></methodCall>',
  '<methodCall><nil/><nil></nil><empty>   </empty></methodCall>',
  '<a>\u00A0</a>',
  '',
  '   \n ',
  '<!-- only a comment -->',
  'plain text',
  '<a>',
  '<a></b>',
  '<a><b></a>',
  '<a/><b/>',
  '<a/>trailing',
  '<a/>  ',
  '<a>&bogus;</a>',
  '<a x="1" y=\'2\'>t</a>',
  '<a x=1>t</a>',
  '<a><b>1</b><c>2</c><b>3</b></a>',
  '<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member></struct></value></fault></methodResponse>',
];

describe('XML-RPC codec: the tree built from sax events is the tree xml2js builds', () => {
  it('on a corpus of well-formed, odd and broken documents', () => {
    for (const xml of CORPUS) expectSame(xml);
  });

  it('on 3,000 seeded random mutations of a real call (characters dropped, duplicated or replaced by markup)', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = ['<', '>', '/', '&', ';', '<![CDATA[', ']]>', '<!--', '-->', ' ', '\n', '<value>', '</value>', '<x/>', '"', '=', '\uFEFF'];
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      let xml = CALL;
      for (let k = 1 + random(3); k > 0; k--) {
        const at = random(xml.length);
        const op = random(3);
        if (op === 0) xml = xml.slice(0, at) + xml.slice(at + 1 + random(5));
        else if (op === 1) xml = xml.slice(0, at) + xml.slice(at, at + 1 + random(8)) + xml.slice(at);
        else xml = xml.slice(0, at) + pieces[random(pieces.length)] + xml.slice(at);
      }
      expectSame(xml);
      if (buildTree(xml).errors.length) errors++;
    }
    // The mutations must exercise both sides: broken documents and still well-formed ones.
    expect(errors).to.be.within(300, 2900);
  });

  it('reads a call end to end through the new tree', () => {
    const call = parseMethodCall(CALL);
    expect(call.methodName).to.equal('Execute');
    const [s] = call.params as [Record<string, unknown>];
    expect(s.Method).to.equal('AccountDetailsGet_API');
    expect((s.Params as unknown[]).slice(0, 6)).to.deep.equal([1, 'a & b <c>', [], {}, null, true]);
  });
});
