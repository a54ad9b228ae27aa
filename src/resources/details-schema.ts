import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { isValidIBAN } from 'ibantools';
import { currencyDigits, PAYMENT_INITIATION } from './payment-initiation.ts';

/**
 * JSON Schemas for RFC 9396 `authorization_details`: the one shipped for `payment_initiation`,
 * the checks an operator's schema file must pass (`resource create --details-schema FILE`), and
 * the validation of a detail, whose first failure is said in words (the partner reads it as the
 * `error_description` of `invalid_authorization_details`). Loaded when first needed (a detail
 * to validate, a schema file to check), never at start: ajv is ~1 MiB of heap a server without
 * RAR partners would carry for nothing.
 *
 * Formats any schema may use besides the standard ones (ajv-formats): `iban` (checksum verified,
 * electronic form: no spaces), `currency` (an ISO 4217 code of a currency, not of a metal, a fund
 * or a test), `amount` (a positive decimal number in a string: "1250.00"), `text` (no control or
 * invisible formatting characters, which could make a consent page read other than it is). The
 * keyword `amountFitsCurrency: true` on an object with `currency` and `amount` refuses more
 * decimal places than the currency has (EUR 2, JPY 0, KWD 3).
 */

const AMOUNT = /^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$/;
const isAmount = (value: string) => AMOUNT.test(value) && /[1-9]/.test(value);
// control characters, invisible formatting (bidirectional overrides, zero-width), line and paragraph separators
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const isText = (value: string) => value.trim() === value && value.length > 0 && !INVISIBLE.test(value);

/** The shipped schema: RFC 9396's own example's field names (its section 2.1), nothing else. */
const PAYMENT_INITIATION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'instructedAmount', 'creditorName', 'creditorAccount', 'remittanceInformationUnstructured'],
  properties: {
    type: { const: PAYMENT_INITIATION },
    // RFC 9396 section 2.2's common fields: where (this API) and what may be done with the payment
    locations: { type: 'array', minItems: 1, maxItems: 10, items: { type: 'string', format: 'uri', maxLength: 512 } },
    actions: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['initiate', 'status', 'cancel'] } },
    instructedAmount: {
      type: 'object',
      additionalProperties: false,
      required: ['currency', 'amount'],
      properties: {
        currency: { type: 'string', format: 'currency' },
        amount: { type: 'string', format: 'amount' },
      },
      amountFitsCurrency: true,
    },
    creditorName: { type: 'string', format: 'text', maxLength: 140 },
    creditorAccount: {
      type: 'object',
      additionalProperties: false,
      required: ['iban'],
      properties: { iban: { type: 'string', format: 'iban' } },
    },
    remittanceInformationUnstructured: { type: 'string', format: 'text', maxLength: 140 },
    requestedExecutionDate: { type: 'string', format: 'date' },
  },
} as const;

// ajv-formats is CommonJS: its default export is the module object under Node's ESM loader typings
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** A fresh Ajv: schemas compiled into it are not registered by `$id`, so two may share one. */
function newAjv(): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    addUsedSchema: false,
    // an unknown keyword or format is a typo in the schema file, refused when it is registered
    strictSchema: true,
    strictNumbers: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
  });
  addFormats(ajv);
  ajv.addFormat('iban', { type: 'string', validate: (value: string) => isValidIBAN(value) });
  ajv.addFormat('currency', { type: 'string', validate: (value: string) => currencyDigits(value) !== undefined });
  ajv.addFormat('amount', { type: 'string', validate: isAmount });
  ajv.addFormat('text', { type: 'string', validate: isText });
  ajv.addKeyword({
    keyword: 'amountFitsCurrency',
    type: 'object',
    schemaType: 'boolean',
    errors: true,
    validate: function fits(this: unknown, wanted: boolean, data: Record<string, unknown>) {
      if (!wanted) return true;
      const { currency, amount } = data;
      if (typeof currency !== 'string' || typeof amount !== 'string') return true;
      const digits = currencyDigits(currency);
      const decimals = amount.split('.')[1]?.length ?? 0;
      if (digits === undefined || decimals <= digits) return true;
      (fits as { errors?: Partial<ErrorObject>[] }).errors = [
        {
          keyword: 'amountFitsCurrency',
          message: `has ${decimals} decimal place${decimals === 1 ? '' : 's'}: ${currency} amounts have ${digits === 0 ? 'none' : `at most ${digits}`}`,
          params: { currency, digits },
        },
      ];
      return false;
    },
  });
  return ajv;
}

export type DetailsValidator = (detail: unknown) => string | undefined;

/** `a.b` for `/a/b`, or `the detail` for the detail itself. */
const fieldName = (pointer: string) =>
  pointer
    ? pointer
        .slice(1)
        .split('/')
        .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
        .join('.')
    : 'the detail';

const FORMAT_WORDS: Partial<Record<string, string>> = {
  iban: 'is not a valid IBAN (wrong check digits, length or country; no spaces)',
  currency: 'is not an ISO 4217 currency code',
  amount: "must be a positive decimal amount in a string, e.g. '1250.00'",
  text: 'must be text without control or invisible formatting characters, or spaces at either end',
  date: 'must be a date (YYYY-MM-DD)',
};

/** The first failure in words, without `"` or `\\` (RFC 6749's error_description): `instructedAmount.currency 'XYZ' is not…`. */
function reason(error: ErrorObject, detail: unknown): string {
  const field = fieldName(error.instancePath);
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required') return `${field === 'the detail' ? '' : `${field}: `}${String(params.missingProperty)} is missing`;
  if (error.keyword === 'additionalProperties')
    return `unknown field ${field === 'the detail' ? '' : `${field}.`}${String(params.additionalProperty)}`;
  if (error.keyword === 'format') {
    const words = FORMAT_WORDS[String(params.format)];
    const value = valueAt(detail, error.instancePath);
    // the value is repeated only when it is short printable ASCII (an error_description is ASCII, RFC 6749)
    const shown =
      typeof value === 'string' && /^[\x20\x21\x23-\x26\x28-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,64}$/.test(value) ? ` '${value}'` : '';
    if (words) return `${field}${shown} ${words}`;
  }
  if (error.keyword === 'amountFitsCurrency') return `${field === 'the detail' ? '' : `${field}.`}amount ${error.message ?? ''}`;
  return `${field} ${error.message ?? 'is not valid'}`;
}

function valueAt(detail: unknown, pointer: string): unknown {
  let value = detail;
  for (const part of pointer.split('/').slice(1)) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return value;
}

function wrap(validate: ValidateFunction): DetailsValidator {
  return (detail) => {
    if (validate(detail)) return undefined;
    const first = validate.errors?.at(0);
    return first ? reason(first, detail) : 'does not match the schema of its type';
  };
}

const MAX_SCHEMA_BYTES = 64 * 1024;

/**
 * An operator's schema file, checked: JSON, at most 64 KiB, a JSON Schema ajv compiles without
 * an unknown keyword or format, and synchronous. Returns the schema as stored (compact JSON);
 * throws an Error whose message says what is wrong, on one line.
 */
export function checkDetailsSchema(text: string): string {
  if (Buffer.byteLength(text) > MAX_SCHEMA_BYTES) throw new Error(`is larger than ${MAX_SCHEMA_BYTES / 1024} KiB`);
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (error) {
    throw new Error(`is not JSON (${(error as Error).message.split('\n')[0]})`, { cause: error });
  }
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new Error('is not a JSON Schema (a JSON object)');
  if ((schema as { $async?: unknown }).$async === true) throw new Error('is an asynchronous schema ($async): not supported');
  try {
    newAjv().compile(schema);
  } catch (error) {
    throw new Error(`is not a valid JSON Schema: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  return JSON.stringify(schema);
}

const builtIn = wrap(newAjv().compile(PAYMENT_INITIATION_SCHEMA));
const compiled = new Map<string, DetailsValidator>();

/**
 * The validator of a stored schema (`null`: the shipped one). Compiled once per schema text and
 * kept (a changed schema is a new text); a schema that no longer compiles refuses every detail.
 */
export function detailsValidator(schema: string | null): DetailsValidator {
  if (schema === null) return builtIn;
  let validator = compiled.get(schema);
  if (!validator) {
    try {
      validator = wrap(newAjv().compile(JSON.parse(schema) as object));
    } catch {
      validator = () => 'the schema registered for this type is not usable: tell the platform operator';
    }
    if (compiled.size >= 100) compiled.delete(compiled.keys().next().value as string);
    compiled.set(schema, validator);
  }
  return validator;
}
