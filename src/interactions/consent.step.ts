import { findActiveUser } from '../accounts/user.service.ts';
import { recordChange } from '../audit/audit.service.ts';
import { requestIdOf } from '../http/request-log.middleware.ts';
import { clientAddress } from '../limits/source-address.ts';
import { AppError } from '../shared/errors.ts';
import { grantConsent, requestedDetails, requestedScopes, scopeWords } from './consent.service.ts';
import { detailWords } from './details-words.ts';
import { EXPIRED, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { finish } from './login.outcome.ts';
import { csrf, page } from './login.pages.ts';

export async function showConsent(deps: LoginRouteDeps, ctx: Ctx) {
  const { interaction, clientName } = ctx.state.flow;
  const accountId = interaction.session?.accountId;
  const user = accountId ? await findActiveUser(deps.accounts.db, accountId) : undefined;
  if (!user) throw new AppError('invalid_request', EXPIRED);
  const details = requestedDetails(interaction);
  page(ctx, `Allow ${clientName}?`, 'consent', {
    uid: interaction.uid,
    csrf: csrf(deps, ctx),
    client: clientName,
    username: user.username,
    details: detailWords(details, clientName),
    scopes: await scopeWords(deps.accounts.db, requestedScopes(interaction)),
  });
}

/** POST /interaction/:uid/consent: Allow records the grant; Deny ends with access_denied. */
export function decideConsent(deps: LoginRouteDeps) {
  return async function decideConsent(ctx: Ctx) {
    const { interaction, provider, form } = ctx.state.flow;
    const accountId = interaction.session?.accountId;
    if (!accountId) throw new AppError('invalid_request', EXPIRED);
    if (form.decision === 'allow') {
      const grantId = await grantConsent(provider, deps.accounts.db, interaction, accountId, deps.accounts.now());
      // the consent's audit row; if it cannot be written the flow ends here with an error (fail loud)
      await recordChange(
        deps.accounts.db,
        { actor: { type: 'person', id: accountId }, sourceIp: clientAddress(ctx, deps.trustProxy), requestId: requestIdOf(ctx) },
        { action: 'consent.give', target: grantId, details: { client_id: interaction.params.client_id as string } },
        deps.accounts.now(),
      );
      return finish(ctx, { consent: { grantId } }, true);
    }
    if (form.decision === 'deny')
      return finish(ctx, { error: 'access_denied', error_description: 'the person declined the request' }, false);
    throw new AppError('invalid_input', 'Choose Allow or Deny.');
  };
}
