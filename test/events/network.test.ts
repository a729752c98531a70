import { expect } from 'chai';
import { isInternalAddress, literalInternalHost, resolvesInternal } from '../../src/events/network';

describe("webhook destinations of resellers: the provider's network is off limits", () => {
  it('tells internal addresses from public ones', () => {
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1']) {
      expect(isInternalAddress(ip), ip).to.equal(true);
    }
    for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isInternalAddress(ip), ip).to.equal(false);
  });

  it('sees an internal IPv4 address carried inside an IPv6 one (mapped in hex, compatible, NAT64, 6to4)', () => {
    for (const ip of ['::ffff:7f00:1', '::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::169.254.169.254', '64:ff9b:1::a00:1', '2002:7f00:1::1', '2002:a9fe:a9fe::1', '2002:c0a8:101::']) {
      expect(isInternalAddress(ip), ip).to.equal(true);
    }
    for (const ip of ['::ffff:808:808', '64:ff9b::808:808', '64:ff9b::8.8.4.4', '2002:808:808::1', '2001:db8::7f00:1', '2606:4700::6810:84e5']) expect(isInternalAddress(ip), ip).to.equal(false);
  });

  it('sees localhost and bracketed IPv6 literals in URLs, and resolves names', async () => {
    expect(literalInternalHost(new URL('http://localhost:8080/x'))).to.equal(true);
    expect(literalInternalHost(new URL('http://[::1]/x'))).to.equal(true);
    expect(literalInternalHost(new URL('https://example.com/x'))).to.equal(false);
    expect(await resolvesInternal(new URL('http://127.0.0.1:9/x'))).to.equal('127.0.0.1');
    expect(await resolvesInternal(new URL('http://8.8.8.8/x'))).to.equal(null);
  });
});
