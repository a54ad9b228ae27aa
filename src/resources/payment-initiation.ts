import currencyCodes from 'currency-codes';

/**
 * The built-in `authorization_details` type and the ISO 4217 digits its amounts may have. Apart
 * from details-schema.ts (which loads ajv) so that the consent page and the list of type names
 * need no JSON Schema validator: ajv is loaded on the first detail validated or schema checked.
 */

/** The built-in type: `--details-type payment_initiation` without a schema file registers it. */
export const PAYMENT_INITIATION = 'payment_initiation';

/** ISO 4217 codes of real currencies (the list also holds precious metals, bond units, XTS, XXX…). */
const NOT_MONEY = new Set(['XDR', 'XSU', 'XUA']);
const CURRENCY_DIGITS = new Map(
  currencyCodes.data
    .filter((entry) => !entry.countries.some((country) => country.startsWith('Zz')) && !NOT_MONEY.has(entry.code))
    .map((entry) => [entry.code, entry.digits]),
);

/** Decimal places a currency's amounts may have, or undefined for no ISO 4217 currency. */
export function currencyDigits(code: string): number | undefined {
  return CURRENCY_DIGITS.get(code);
}
