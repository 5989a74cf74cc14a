import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// Custom search attributes that let ops find a payment in the Temporal Web UI, e.g.
// `MerchantId = "demo" AND PaymentStatus = "failed"`. scripts/temporal.ts registers them.
export const MerchantId = defineSearchAttributeKey('MerchantId', SearchAttributeType.KEYWORD);
export const CustomerId = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const PaymentStatus = defineSearchAttributeKey('PaymentStatus', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [MerchantId, CustomerId, PaymentStatus];
