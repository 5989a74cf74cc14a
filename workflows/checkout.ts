// STUB: being written; signature is the contract.
import type { CheckoutInput, CheckoutSnapshot } from '../domain/index.js';
export async function checkoutWorkflow(input: CheckoutInput): Promise<CheckoutSnapshot> {
  throw new Error(`not yet ${input.checkoutId}`);
}
