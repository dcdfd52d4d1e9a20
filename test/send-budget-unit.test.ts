import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SendBudget, type SendAccount } from '../src/ws/send-budget.js';

// The budget's rules with fake accounts: a running sum of deltas, an exact recount only when
// the sum passes the bound, and shedding from the largest backlog down until under it.
class Account implements SendAccount {
  shedCount = 0;
  constructor(
    private readonly budget: () => SendBudget,
    public bytes: number,
    public seen = 0,
  ) {}
  recount(): number {
    return (this.seen = this.bytes);
  }
  shed(): void {
    this.shedCount++;
    this.budget().change(-this.seen);
    this.bytes = this.seen = 0;
  }
  /** As Connection.send does: report what changed since last seen. */
  send(bytes: number): void {
    this.bytes = bytes;
    const delta = bytes - this.seen;
    this.seen = bytes;
    this.budget().change(delta);
  }
}

test('the largest backlogs are shed first, only as many as bring the total under the bound', () => {
  const accounts: Account[] = [];
  const budget = new SendBudget(100, () => accounts);
  for (const bytes of [10, 40, 30, 20]) accounts.push(new Account(() => budget, bytes));
  for (const a of accounts) a.send(a.bytes);
  assert.equal(budget.total, 100, 'at the bound is not over it');
  accounts[0].send(25); // 115: the 40 goes, leaving 75
  assert.deepEqual(accounts.map((a) => a.shedCount), [0, 1, 0, 0]);
  assert.equal(budget.total, 75);
});

test('a running sum left high by a silent drain is corrected by the recount, and nobody is shed for it', () => {
  const accounts: Account[] = [];
  const budget = new SendBudget(100, () => accounts);
  const a = new Account(() => budget, 0);
  const b = new Account(() => budget, 0);
  accounts.push(a, b);
  a.send(90);
  a.bytes = 0; // flushed without a 'drain': the budget still counts 90
  b.send(50);
  assert.deepEqual([a.shedCount, b.shedCount], [0, 0]);
  assert.equal(budget.total, 50);
});
