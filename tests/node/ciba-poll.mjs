// Interop check: openid-client (v6) runs a CIBA poll-mode flow against mcgate.
//
// Driven by tests/openid_client.rs, which starts the demo gateway and sets:
//   ISSUER               the gateway's issuer (https://127.0.0.1:PORT)
//   CLIENT_ID            a client registered for client_secret_basic
//   CLIENT_SECRET        its secret
//   CLIENT_KEY_FILE      optional: authenticate with private_key_jwt using this P-256 PKCS#8 PEM
//                        key instead of a secret (then CLIENT_SECRET is not needed)
//   CLIENT_KEY_KID       optional: the kid of that key in the client's registered JWKS
//   ID_TOKEN_ALG         optional: the client's id_token_signed_response_alg (default RS256)
//   LOGIN_HINT           e.g. MSISDN:34700000011
//   EXPECT_ERROR         optional: the OAuth error the poll must end with (e.g. access_denied)
//   BINDING_MESSAGE      optional binding_message (default below)
//   POLL_TIMEOUT_S       optional bound on the whole poll (default 45)
//   TRACE_HTTP           optional: when set, logs each request and its status on stderr
//   NODE_EXTRA_CA_CERTS  the gateway's self-signed certificate (TLS is verified, never disabled)
//
// Success: prints ONE line of JSON on stdout and exits 0:
//   {"claims": {...validated ID token claims...}, "token_type": "bearer", ...}
//   or, with EXPECT_ERROR, {"error": "...", "status": 400, ...} observed from the poll.
// Anything unexpected: prints the error on stderr and exits 1.

import * as client from 'openid-client'
import { inspect } from 'node:util'

function env(name, fallback) {
  const v = process.env[name]
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback
    throw new Error(`environment variable ${name} is required`)
  }
  return v
}

function fail(stage, err) {
  process.stderr.write(`ciba-poll.mjs: unexpected failure during ${stage}:\n`)
  process.stderr.write(`${inspect(err, { depth: 6, breakLength: 120 })}\n`)
  process.exit(1)
}

const issuer = env('ISSUER')
const clientId = env('CLIENT_ID')
const clientKeyFile = process.env.CLIENT_KEY_FILE || undefined
const clientSecret = clientKeyFile === undefined ? env('CLIENT_SECRET') : undefined
const idTokenAlg = env('ID_TOKEN_ALG', 'RS256')
const loginHint = env('LOGIN_HINT')
const expectError = process.env.EXPECT_ERROR || undefined
const bindingMessage = env('BINDING_MESSAGE', 'Sign in to openid-client test')
const pollTimeoutS = Number(env('POLL_TIMEOUT_S', '45'))

// The fetch openid-client uses for every request (discovery, jwks, bc-authorize, token).
async function tracedFetch(url, options) {
  const response = await fetch(url, options)
  process.stderr.write(`${options?.method ?? 'GET'} ${url} -> ${response.status}\n`)
  return response
}
const discoveryOptions = { timeout: 15 }
if (process.env.TRACE_HTTP) discoveryOptions[client.customFetch] = tracedFetch

let config
try {
  // Issuer discovery (/.well-known/openid-configuration) with the issuer check. The client
  // authenticates with client_secret_basic, as registered; openid-client's own default for a
  // bare secret string is client_secret_post, so the method is given explicitly.
  let metadata = { client_secret: clientSecret, id_token_signed_response_alg: idTokenAlg }
  let auth = clientSecret === undefined ? undefined : client.ClientSecretBasic(clientSecret)
  if (clientKeyFile !== undefined) {
    // private_key_jwt: every request carries a fresh assertion signed with the client's key.
    const { readFileSync } = await import('node:fs')
    const pem = readFileSync(clientKeyFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
    const key = await crypto.subtle.importKey(
      'pkcs8', Buffer.from(pem, 'base64'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
    metadata = { id_token_signed_response_alg: idTokenAlg, token_endpoint_auth_method: 'private_key_jwt' }
    auth = client.PrivateKeyJwt({ key, kid: process.env.CLIENT_KEY_KID || undefined })
  }
  config = await client.discovery(new URL(issuer), clientId, metadata, auth, discoveryOptions)
  // By default openid-client trusts an ID token from the token endpoint on TLS alone; this
  // makes it also verify the token's signature with the keys at jwks_uri.
  client.enableNonRepudiationChecks(config)
} catch (err) {
  fail('discovery', err)
}

let ack
try {
  ack = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid mc_authn',
    login_hint: loginHint,
    binding_message: bindingMessage,
  })
} catch (err) {
  fail('backchannel authentication request', err)
}

let tokens
try {
  // Waits `interval` between polls, honours slow_down and Retry-After, and validates the ID
  // token (iss, aud, azp, exp, iat, sub, auth_time types, signature via jwks_uri).
  tokens = await client.pollBackchannelAuthenticationGrant(config, ack, undefined, {
    signal: AbortSignal.timeout(pollTimeoutS * 1000),
  })
} catch (err) {
  if (expectError !== undefined && err instanceof client.ResponseBodyError && err.error === expectError) {
    const out = { error: err.error, status: err.status }
    if (err.error_description !== undefined) out.error_description = err.error_description
    process.stdout.write(`${JSON.stringify(out)}\n`)
    process.exit(0)
  }
  fail(expectError === undefined ? 'token polling' : `token polling (expected error ${expectError})`, err)
}

if (expectError !== undefined) {
  fail('token polling', new Error(`expected the poll to end with ${expectError}, but tokens were issued: ${JSON.stringify(tokens)}`))
}
const claims = tokens.claims()
if (claims === undefined) {
  fail('token response', new Error(`no id_token in the token response although scope included openid: ${JSON.stringify(tokens)}`))
}

const out = {
  claims,
  token_type: tokens.token_type,
  expires_in: tokens.expires_in,
  scope: tokens.scope,
  ack: { expires_in: ack.expires_in, interval: ack.interval },
}
process.stdout.write(`${JSON.stringify(out)}\n`)
process.exit(0)
