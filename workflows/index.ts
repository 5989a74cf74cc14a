// The only workflowsPath: every workflow the worker runs is exported here. New runs start the V2
// types; the frozen ones in legacy/ keep serving the runs that started before them until they drain.
export { checkoutWorkflowV2 } from './checkout/workflow.js';
export { topupWorkflowV2 } from './topup.js';
export { payoutWorkflowV2 } from './payout.js';
export { webhookDeliveryWorkflow } from './webhook-delivery.js';
export { reconciliationWorkflow, reconciliationWorkflowV2 } from './reconciliation.js';
export { checkoutWorkflow } from './legacy/checkout-v1.js';
export { topupWorkflow } from './legacy/topup-v1.js';
export { payoutWorkflow } from './legacy/payout-v1.js';
