import { expect } from 'chai';
import { isDeadlock, retryOnDeadlock } from '../../../src/db/transaction';

const deadlock = () => Object.assign(new Error('Deadlock found when trying to get lock'), { code: 'ER_LOCK_DEADLOCK' });

describe('db/transaction: retryOnDeadlock', () => {
  it('runs a transaction again when the database rolled it back as a deadlock victim', async () => {
    let runs = 0;
    const result = await retryOnDeadlock(async () => {
      runs++;
      if (runs < 3) throw deadlock();
      return 'committed';
    });
    expect(result).to.equal('committed');
    expect(runs).to.equal(3);
  });

  it('gives up after the last attempt and passes the deadlock on', async () => {
    let runs = 0;
    const err = await retryOnDeadlock(async () => {
      runs++;
      throw deadlock();
    }, 3).catch((e: Error) => e);
    expect(isDeadlock(err)).to.equal(true);
    expect(runs).to.equal(3);
  });

  it('never retries any other error', async () => {
    let runs = 0;
    const err = await retryOnDeadlock(async () => {
      runs++;
      throw Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY' });
    }).catch((e: Error) => e);
    expect((err as { code?: string }).code).to.equal('ER_DUP_ENTRY');
    expect(runs).to.equal(1);
  });
});
