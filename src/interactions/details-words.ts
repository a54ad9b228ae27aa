import { friendlyFormatIBAN } from 'ibantools';
import { currencyDigits, PAYMENT_INITIATION } from '../resources/payment-initiation.ts';

/**
 * `authorization_details` (RFC 9396) in words for the consent page (views/partials/details.eta
 * lays them out, escaped): a payment reads "Pay €1,250.00 to ACME Supplies Ltd, IBAN DE89 3704
 * 0044 0532 0130 00, reference Invoice 2291"; a detail of another type, or a payment not of the
 * shipped shape (an API may register its own schema for it), lists its fields one by one.
 */
export type DetailWords =
  | Readonly<{ kind: 'payment'; headline: string; parts: readonly string[]; hint?: string }>
  | Readonly<{ kind: 'fields'; type: string; fields: readonly string[] }>;

type Payment = {
  instructedAmount: { currency: string; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured?: string;
  requestedExecutionDate?: string;
  actions?: string[];
};

const text = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

function asPayment(detail: Record<string, unknown>): Payment | undefined {
  const amount = detail.instructedAmount as Record<string, unknown> | undefined;
  const account = detail.creditorAccount as Record<string, unknown> | undefined;
  if (detail.type !== PAYMENT_INITIATION || !amount || !account) return undefined;
  if (
    !text(amount.currency) ||
    currencyDigits(amount.currency) === undefined ||
    !text(amount.amount) ||
    !/^\d+(\.\d+)?$/.test(amount.amount)
  )
    return undefined;
  if (!text(detail.creditorName) || !text(account.iban)) return undefined;
  return detail as unknown as Payment;
}

/** €1,250.00: the exact decimal given (formatted from the string, never through a float). */
function moneyWords(currency: string, amount: string): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(amount as `${number}`);
}

function dateWords(date: string): string | undefined {
  const day = new Date(`${date}T00:00:00Z`);
  return Number.isNaN(day.getTime()) ? undefined : new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeZone: 'UTC' }).format(day);
}

const ACTION_WORDS: Partial<Record<string, string>> = { status: 'check its status', cancel: 'cancel it' };

function paymentWords(payment: Payment, client: string): DetailWords {
  const { instructedAmount: money, creditorName, creditorAccount, remittanceInformationUnstructured: reference } = payment;
  const parts = [`IBAN ${friendlyFormatIBAN(creditorAccount.iban) ?? creditorAccount.iban}`];
  if (text(reference)) parts.push(`reference ${reference}`);
  const when = text(payment.requestedExecutionDate) ? dateWords(payment.requestedExecutionDate) : undefined;
  if (when) parts.push(`on ${when}`);
  const also = (payment.actions ?? []).flatMap((action) => ACTION_WORDS[action] ?? []);
  const headline = `Pay ${moneyWords(money.currency, money.amount)} to ${creditorName}`;
  return { kind: 'payment', headline, parts, ...(also.length ? { hint: `${client} may also ${also.join(' and ')}.` } : {}) };
}

/** `a.b: value` for every leaf of a detail other than its type. */
function fields(value: unknown, path: string[] = []): string[] {
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([key, inner]) => (path.length === 0 && key === 'type' ? [] : fields(inner, [...path, key])));
  return [`${path.join('.')}: ${typeof value === 'string' ? value : JSON.stringify(value)}`];
}

/** The details in words; `client` names the partner (who may also check or cancel a payment). */
export function detailWords(details: ReadonlyArray<Record<string, unknown>>, client: string): DetailWords[] {
  return details.map((detail) => {
    const payment = asPayment(detail);
    return payment ? paymentWords(payment, client) : { kind: 'fields', type: String(detail.type), fields: fields(detail) };
  });
}
