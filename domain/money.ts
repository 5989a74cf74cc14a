// Money is an integer count of minor units with an ISO 4217 currency. In code it is a bigint; on
// the wire and in workflow payloads the amount is a decimal string, because JSON numbers are
// doubles and lose cents above 2^53.

export interface Money {
  /** Integer count of minor units, as a decimal string ("1999"). */
  amount: string;
  /** ISO 4217 alphabetic code ("JPY"). */
  currency: string;
}

const AMOUNT = /^(0|[1-9][0-9]{0,17})$/;
const CURRENCY = /^[A-Z]{3}$/;

export function isAmountString(value: string): boolean {
  return AMOUNT.test(value);
}

export function isCurrencyCode(value: string): boolean {
  return CURRENCY.test(value);
}

export function money(amount: bigint, currency: string): Money {
  return { amount: amount.toString(), currency };
}
