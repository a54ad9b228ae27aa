// Rich authorization requests (RFC 9396) in tests: a payment as RFC 9396's example writes it, and
// the wait for a server to take a type registered while it runs.

export const PAYMENTS_API = 'https://api.bank.test/payments';

export const PAYMENT = {
  type: 'payment_initiation',
  actions: ['initiate', 'status'],
  locations: [PAYMENTS_API],
  instructedAmount: { currency: 'EUR', amount: '1250.00' },
  creditorName: 'ACME Supplies Ltd',
  creditorAccount: { iban: 'DE89370400440532013000' },
  remittanceInformationUnstructured: 'Invoice 2291',
};

/** Polls `condition` every 100 ms, 10 s at most (a server applies a change within KEY_POLL_INTERVAL). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('condition not met within 10 s');
}

/** The `authorization_details_types_supported` of the server at `issuer`. */
export async function supportedDetailsTypes(issuer: string): Promise<string[]> {
  const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    authorization_details_types_supported?: string[];
  };
  return metadata.authorization_details_types_supported ?? [];
}

/** Waits until the server at `issuer` accepts every type in `types` (registered while it runs). */
export function untilTypesSupported(issuer: string, types: readonly string[]): Promise<void> {
  return until(async () => {
    const supported = await supportedDetailsTypes(issuer);
    return types.every((type) => supported.includes(type));
  });
}
