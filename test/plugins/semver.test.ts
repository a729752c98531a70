import { expect } from 'chai';
import { isRange, satisfies } from '../../src/plugins/semver';

describe('plugin SDK version ranges', () => {
  const cases: [string, string, boolean][] = [
    ['1.0.0', '1.0.0', true],
    ['1.0.1', '1.0.0', false],
    ['1.4.2', '^1.0.0', true],
    ['2.0.0', '^1.0.0', false],
    ['0.9.9', '^1.0.0', false],
    ['0.2.5', '^0.2.1', true],
    ['0.3.0', '^0.2.1', false],
    ['1.2.9', '~1.2.0', true],
    ['1.3.0', '~1.2.0', false],
    ['1.9.0', '1.x', true],
    ['2.0.0', '1.x', false],
    ['7.1.0', '*', true],
    ['1.5.0', '>=1.2.0 <2.0.0', true],
    ['2.0.0', '>=1.2.0 <2.0.0', false],
    ['3.1.0', '^1.0.0 || ^3.0.0', true],
    ['2.1.0', '^1.0.0 || ^3.0.0', false],
    ['1.0.0', '>= 1.0.0', true],
  ];
  for (const [version, range, expected] of cases) {
    it(`${expected ? 'accepts' : 'refuses'} ${version} for the range "${range}"`, () => {
      expect(satisfies(version, range)).to.equal(expected);
    });
  }

  it('calls a range it cannot read malformed, and nothing satisfies it', () => {
    for (const bad of ['', 'one', '^1.0.0 ||', '1.x.3', '>>1.0.0']) {
      expect(isRange(bad), bad).to.equal(false);
      expect(satisfies('1.0.0', bad), bad).to.equal(false);
    }
  });
});
