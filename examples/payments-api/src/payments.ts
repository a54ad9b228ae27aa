import { createHash, randomUUID } from 'node:crypto';
import { Refusal } from './challenges.ts';
import type { Principal } from './tokens.ts';

// A payment is executed only as the person approved it: the order must match a
// `payment_initiation` entry of the token's authorization_details (RFC 9396) in amount, currency
// and creditor (name and IBAN), and each approved entry pays once per token.

export type PaymentOrder = Readonly<{
  instructedAmount: { currency: string; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured?: string;
}>;

export type Payment = PaymentOrder & Readonly<{ id: string; status: 'executed'; clientId: string; executedAt: string }>;

export class BadOrder extends Error {}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The order from a request body, or BadOrder saying which field is missing or malformed. */
export function parseOrder(body: unknown): PaymentOrder {
  if (!isObject(body)) throw new BadOrder('the body must be a JSON object');
  const amount = body.instructedAmount;
  if (!isObject(amount) || typeof amount.currency !== 'string' || typeof amount.amount !== 'string' || !/^\d+(\.\d+)?$/.test(amount.amount))
    throw new BadOrder('instructedAmount must be {"currency": "EUR", "amount": "12.50"}');
  if (typeof body.creditorName !== 'string' || !body.creditorName) throw new BadOrder('creditorName is required');
  if (!isObject(body.creditorAccount) || typeof body.creditorAccount.iban !== 'string')
    throw new BadOrder('creditorAccount.iban is required');
  if (body.remittanceInformationUnstructured !== undefined && typeof body.remittanceInformationUnstructured !== 'string')
    throw new BadOrder('remittanceInformationUnstructured must be a string');
  return {
    instructedAmount: { currency: amount.currency, amount: amount.amount },
    creditorName: body.creditorName,
    creditorAccount: { iban: body.creditorAccount.iban },
    ...(body.remittanceInformationUnstructured === undefined
      ? {}
      : { remittanceInformationUnstructured: body.remittanceInformationUnstructured }),
  };
}

/** An approved payment_initiation detail as the token carries it: Portcullis validated it, still read it warily. */
type ApprovedPayment = Partial<{
  type: unknown;
  actions: unknown;
  instructedAmount: Partial<Record<'currency' | 'amount', unknown>>;
  creditorName: unknown;
  creditorAccount: Partial<Record<'iban', unknown>>;
}>;

/** "1250.00" and "1250" are the same amount; compared as decimals, never as floats. */
const decimal = (amount: string) =>
  amount
    .replace(/^0+(?=\d)/, '')
    .replace(/(\.\d*?)0+$/, '$1')
    .replace(/\.$/, '');
const iban = (text: string) => text.replace(/\s+/g, '').toUpperCase();

// guide:begin payment-match
/** How `order` differs from one approved payment_initiation detail: nothing when it matches. */
function differences(order: PaymentOrder, approved: ApprovedPayment): string[] {
  const found: string[] = [];
  const want = { amount: String(approved.instructedAmount?.amount), currency: String(approved.instructedAmount?.currency) };
  const got = order.instructedAmount;
  if (got.currency !== want.currency || decimal(got.amount) !== decimal(want.amount))
    found.push(`the amount ${got.amount} ${got.currency} is not the approved ${want.amount} ${want.currency}`);
  if (order.creditorName !== approved.creditorName)
    found.push(`the creditor "${order.creditorName}" is not the approved "${String(approved.creditorName)}"`);
  const account = String(approved.creditorAccount?.iban);
  if (iban(order.creditorAccount.iban) !== iban(account))
    found.push(`the creditor account ${order.creditorAccount.iban} is not the approved ${account}`);
  return found;
}

/** The approved detail `order` executes (its index), or a 403 Refusal explaining why none does. */
function approvedEntry(principal: Principal, order: PaymentOrder): number {
  const entries = principal.authorizationDetails
    .map((detail, index) => ({ detail: isObject(detail) ? detail : {}, index }))
    .filter(
      ({ detail }) => detail.type === 'payment_initiation' && (!Array.isArray(detail.actions) || detail.actions.includes('initiate')),
    );
  if (!entries.length)
    throw new Refusal('payment_not_approved', 'this token carries no approved payment (authorization_details of type payment_initiation)');
  const compared = entries.map((entry) => ({ ...entry, found: differences(order, entry.detail) }));
  const match = compared.find((entry) => entry.found.length === 0);
  if (match) return match.index;
  const closest = compared.sort((a, b) => a.found.length - b.found.length)[0];
  throw new Refusal('payment_not_approved', `this payment was not approved: ${closest.found.join('; ')}`);
}
// guide:end payment-match

/** Executes approved orders, each approved entry once per token. */
export function paymentLedger(now: () => number) {
  const spent = new Set<string>();
  return {
    execute(principal: Principal, order: PaymentOrder): Payment {
      const entry = approvedEntry(principal, order);
      const key = `${createHash('sha256').update(principal.token).digest('base64url')}:${entry}`;
      if (spent.has(key)) throw new Refusal('payment_not_approved', 'this approved payment was executed already with this token');
      spent.add(key);
      return { ...order, id: randomUUID(), status: 'executed', clientId: principal.clientId, executedAt: new Date(now()).toISOString() };
    },
  };
}

export type PaymentLedger = ReturnType<typeof paymentLedger>;
