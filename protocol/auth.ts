/**
 * Why a credential was refused: by the token verifier, a handshake (WebSocket $connect, a ticket request, the
 * speech socket), a refresh on an open socket or a sign-in. Logged as audit reasons and sent as error codes by the
 * session API, so they are wire contracts: one closed union each, written here only.
 *
 * Runs in Node and in browsers.
 */

/** The token verifier's refusals (common/token.ts). */
export type DenyReason =
  | 'missing_token'
  | 'token_too_large'
  | 'malformed_token'
  | 'non_canonical_encoding'
  | 'crit_header'
  | 'embedded_key'
  | 'missing_claim'
  | 'invalid_claim'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_client'
  | 'wrong_token_use'
  | 'bad_signature'
  | 'bad_algorithm'
  | 'unknown_kid'
  | 'jwks_unavailable'
  | 'no_tenant'
  | 'tenant_not_allowed'
  | 'tenant_required'
  | 'invalid_token';

/** A handshake's refusals: the verifier's and those of the other credentials and checks (common/handshake.ts). */
export type HandshakeDenyReason =
  | DenyReason
  | 'query_token_disabled'
  | 'origin_required'
  | 'origin_not_allowed'
  | 'revoked'
  | 'ticket_invalid'
  | 'ticket_expired'
  | 'ticket_origin_mismatch'
  | 'session_invalid'
  | 'session_refresh_failed';

/** A refresh on an open connection: the credential must stand for the same user with the same groups. */
export type RefreshDenyReason = HandshakeDenyReason | 'different_user' | 'identity_changed' | 'no_credential';

/** Why a password sign-in did not produce tokens (common/credentials.ts). */
export type SignInErrorCode = 'invalid_credentials' | 'new_password_required' | 'mfa_required' | 'password_reset_required' | 'not_confirmed' | 'challenge';
