/** The authentication context class of every Portcullis login: password plus a second factor. */
export const ACR_MFA = 'urn:portcullis:acr:mfa';

/** The authentication methods of every login (RFC 8176): a password and a one-time code. */
export const AMR = ['pwd', 'otp'];

/** ID token lifetime, seconds. */
export const ID_TOKEN_TTL = 3600;
