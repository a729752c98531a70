import { expect } from 'chai';
import { isInternalAddress, literalInternalHost, resolvesInternal } from '../../src/events/network';

describe("webhook destinations of resellers: the provider's network is off limits", () => {
  it('tells internal addresses from public ones', () => {
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1']) {
      expect(isInternalAddress(ip), ip).to.equal(true);
    }
    for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isInternalAddress(ip), ip).to.equal(false);
  });

  it('sees localhost and bracketed IPv6 literals in URLs, and resolves names', async () => {
    expect(literalInternalHost(new URL('http://localhost:8080/x'))).to.equal(true);
    expect(literalInternalHost(new URL('http://[::1]/x'))).to.equal(true);
    expect(literalInternalHost(new URL('https://example.com/x'))).to.equal(false);
    expect(await resolvesInternal(new URL('http://127.0.0.1:9/x'))).to.equal('127.0.0.1');
    expect(await resolvesInternal(new URL('http://8.8.8.8/x'))).to.equal(null);
  });
});
