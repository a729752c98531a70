import { expect } from 'chai';
import { AppError } from '../../../src/domain/errors';
import {
  DEFAULT_SALES_WORKFLOW,
  ORDER_TYPES,
  STATUS_OF_ACTION,
  defaultWorkflow,
  isManual,
  isTerminal,
  nextStep,
  validateWorkflow,
  type WorkflowDefinition,
} from '../../../src/domain/workflow';

function refusal(def: unknown): AppError {
  try {
    validateWorkflow(def);
  } catch (e) {
    expect(e).to.be.instanceOf(AppError);
    expect((e as AppError).code).to.equal('INVALID_ARGUMENT');
    return e as AppError;
  }
  throw new Error('expected the workflow to be refused');
}

const clone = (d: WorkflowDefinition): WorkflowDefinition => JSON.parse(JSON.stringify(d)) as WorkflowDefinition;

describe('domain/workflow', () => {
  it('accepts the default workflow of every order type', () => {
    for (const t of ORDER_TYPES) expect(validateWorkflow(defaultWorkflow(t)).orderType).to.equal(t);
  });

  it('walks the deck: a clean order goes fraud screening -> charge -> provision -> notify -> completed', () => {
    const d = DEFAULT_SALES_WORKFLOW;
    let step = d.start;
    const path = [step];
    for (const outcome of ['pass', 'success', 'success', 'done'] as const) {
      step = nextStep(d, step, outcome);
      path.push(step);
    }
    expect(path).to.deep.equal(['fraud_screening', 'charge_card', 'provision_services', 'notify_customer', 'completed']);
    expect(isTerminal(d, step)).to.equal(true);
    expect(STATUS_OF_ACTION[d.steps[step].action]).to.equal('CP');
  });

  it('marks a suspect order, waits for approval (a manual step), and ends rejected when the operator says no', () => {
    const d = DEFAULT_SALES_WORKFLOW;
    const suspect = nextStep(d, 'fraud_screening', 'suspect');
    expect(STATUS_OF_ACTION[d.steps[suspect].action]).to.equal('SS');
    const waiting = nextStep(d, suspect, 'done');
    expect(isManual(d, waiting)).to.equal(true);
    expect(STATUS_OF_ACTION[d.steps[waiting].action]).to.equal('WA');
    expect(nextStep(d, waiting, 'approved')).to.equal('charge_card');
    const rejected = nextStep(d, waiting, 'rejected');
    expect(STATUS_OF_ACTION[d.steps[rejected].action]).to.equal('RJ');
  });

  it('sends a payment of unknown outcome to an operator rather than guessing', () => {
    expect(nextStep(DEFAULT_SALES_WORKFLOW, 'charge_card', 'unknown')).to.equal('wait_for_approval');
  });

  it('refuses a start that is not a step, naming definition.start', () => {
    expect(refusal({ ...clone(DEFAULT_SALES_WORKFLOW), start: 'nowhere' }).field).to.equal('definition.start');
  });

  it('refuses an unknown action, naming the step', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    (d.steps.mark_suspect as { action: string }).action = 'teleport';
    expect(refusal(d).field).to.equal('definition.steps.mark_suspect.action');
  });

  it('refuses a transition to a step that does not exist', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    d.steps.charge_card.next.success = 'provision_everything';
    const e = refusal(d);
    expect(e.field).to.equal('definition.steps.charge_card.next.success');
    expect(e.message).to.contain('provision_everything');
  });

  it('refuses a step that leaves one of its outcomes unhandled', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    delete d.steps.fraud_screening.next.reject;
    expect(refusal(d).field).to.equal('definition.steps.fraud_screening.next.reject');
  });

  it('refuses an outcome the action cannot have', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    (d.steps.notify_customer.next as Record<string, string>).failure = 'completed';
    expect(refusal(d).field).to.equal('definition.steps.notify_customer.next.failure');
  });

  it('refuses a step no path reaches', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    d.steps.orphan = { action: 'complete', next: {} };
    expect(refusal(d).field).to.equal('definition.steps.orphan');
  });

  it('refuses an automatic loop that would keep an order moving forever', () => {
    const d: WorkflowDefinition = {
      orderType: 'renewal',
      start: 'charge',
      steps: {
        charge: { action: 'charge_payment', next: { success: 'done', declined: 'notify', unknown: 'notify' } },
        notify: { action: 'notify_customer', next: { done: 'charge' } },
        done: { action: 'complete', next: {} },
      },
    };
    expect(refusal(d).message).to.match(/loop with no manual step/);
  });

  it('allows a loop through a manual step (charge unknown -> wait for approval -> charge again)', () => {
    expect(() => validateWorkflow(DEFAULT_SALES_WORKFLOW)).not.to.throw();
  });

  it('refuses a bad step name and a non-object definition', () => {
    const d = clone(DEFAULT_SALES_WORKFLOW);
    d.steps['Bad Name'] = d.steps.completed;
    d.steps.notify_customer.next.done = 'Bad Name';
    expect(refusal(d).field).to.equal('definition.steps.Bad Name');
    expect(refusal('not a workflow').field).to.equal('definition');
    expect(refusal({ orderType: 'gift', start: 'a', steps: {} }).field).to.equal('definition.orderType');
  });
});
