import { expect } from 'chai';
import { jitterOf, MAX_JITTER, MAX_RETRY_MS, nominalDelay, retryDelay } from '../../src/jobs/backoff';

describe('task backoff', () => {
  it('doubles from 5 s after each failed attempt and stays at 1 h once it gets there', () => {
    const seconds = Array.from({ length: 14 }, (_, i) => nominalDelay(i + 1) / 1000);
    expect(seconds).to.deep.equal([5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600, 3600]);
    expect(nominalDelay(1000)).to.equal(MAX_RETRY_MS);
  });

  it('takes the same share off every delay of a task: task 1 waits 4.691 s, 9.382 s, 18.764 s ... and 3377.508 s at the cap', () => {
    expect(Array.from({ length: 12 }, (_, i) => retryDelay(i + 1, 1))).to.deep.equal([
      4691, 9382, 18764, 37528, 75056, 150112, 300223, 600446, 1200892, 2401784, 3377508, 3377508,
    ]);
  });

  it('spreads tasks over the whole jitter range, never above the nominal delay nor below 90 % of it', () => {
    const shares = Array.from({ length: 10_000 }, (_, i) => jitterOf(i + 1));
    expect(Math.min(...shares)).to.be.at.least(0);
    expect(Math.max(...shares)).to.be.below(MAX_JITTER);
    expect(new Set(shares.map((s) => Math.floor(s * 100))).size).to.equal(10); // every percent from 0 to 9 is used
    for (let id = 1; id <= 1000; id++) {
      const d = retryDelay(7, id);
      expect(d).to.be.at.most(nominalDelay(7)).and.above(nominalDelay(7) * 0.9);
    }
  });

  it('gives the same task the same delay every time', () => {
    expect(retryDelay(3, 4242)).to.equal(retryDelay(3, 4242));
    expect(retryDelay(3, 4242)).not.to.equal(retryDelay(3, 4243));
  });
});
