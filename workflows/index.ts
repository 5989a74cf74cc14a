// The only workflowsPath: every workflow the worker runs is exported here.
export { checkoutWorkflow } from './checkout.js';
export { topupWorkflow } from './topup.js';
export { payoutWorkflow } from './payout.js';
export { webhookDeliveryWorkflow } from './webhook-delivery.js';
export { reconciliationWorkflow, reconciliationWorkflowV2 } from './reconciliation.js';
