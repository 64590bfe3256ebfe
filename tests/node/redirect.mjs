// Interop check: openid-client (v6) runs the authorization code flow with PKCE against mcgate.
//
// Driven by tests/openid_client_redirect.rs, which starts the demo gateway and sets:
//   ISSUER               the gateway's issuer (https://127.0.0.1:PORT)
//   CLIENT_ID            a registered client
//   CLIENT_SECRET        optional: its secret (client_secret_basic); absent = public client (none)
//   REDIRECT_URI         a redirect URI registered for it (never fetched: only parsed)
//   LOGIN_HINT           e.g. MSISDN:34700000011
//   NODE_EXTRA_CA_CERTS  the gateway's self-signed certificate (TLS is verified, never disabled)
//
// The browser is played by fetch(redirect: 'manual'): every hop (gateway /authorize → operator
// /authorize → gateway /callback → REDIRECT_URI) is followed by hand. Success: ONE line of JSON
// on stdout ({"claims", "userinfo", "hops", ...}) and exit 0; anything else: stderr, exit 1.

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
  process.stderr.write(`redirect.mjs: unexpected failure during ${stage}:\n`)
  process.stderr.write(`${inspect(err, { depth: 6, breakLength: 120 })}\n`)
  process.exit(1)
}

const issuer = env('ISSUER')
const clientId = env('CLIENT_ID')
const clientSecret = process.env.CLIENT_SECRET || undefined
const redirectUri = env('REDIRECT_URI')
const loginHint = env('LOGIN_HINT')

let config
try {
  const auth = clientSecret === undefined ? client.None() : client.ClientSecretBasic(clientSecret)
  const metadata = clientSecret === undefined ? { token_endpoint_auth_method: 'none' } : { client_secret: clientSecret }
  config = await client.discovery(new URL(issuer), clientId, metadata, auth, { timeout: 15 })
  // Verify the ID token's signature with jwks_uri too (not only TLS).
  client.enableNonRepudiationChecks(config)
} catch (err) {
  fail('discovery', err)
}

const codeVerifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
let authorizationUrl
try {
  authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid mc_authn',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    login_hint: loginHint,
    acr_values: '2',
    max_age: '600',
  })
} catch (err) {
  fail('building the authorization URL', err)
}

// The browser: follow 302s by hand until the RP's redirect_uri (bounded).
const hops = []
let next = authorizationUrl.href
let back
for (let i = 0; i < 4 && back === undefined; i++) {
  let response
  try {
    response = await fetch(next, { redirect: 'manual', signal: AbortSignal.timeout(15000) })
  } catch (err) {
    fail(`browser hop ${i} (${new URL(next).pathname})`, err)
  }
  const location = response.headers.get('location')
  hops.push({ path: new URL(next).pathname, status: response.status })
  if (response.status !== 302 || location === null) {
    fail(`browser hop ${i}`, new Error(`expected a 302 from ${next}, got ${response.status}: ${await response.text()}`))
  }
  if (location.startsWith(redirectUri)) back = new URL(location)
  else next = new URL(location, next).href
}
if (back === undefined) fail('browser', new Error(`no redirect back to ${redirectUri} within 4 hops`))

let tokens
try {
  // Checks iss (RFC 9207), state, then redeems with the PKCE verifier and validates the ID
  // token: signature, iss, aud, azp, exp, iat, nonce, auth_time (max_age), at_hash.
  tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    maxAge: 600,
    idTokenExpected: true,
  })
} catch (err) {
  fail('authorization code grant', err)
}
const claims = tokens.claims()

let userinfo
try {
  userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
} catch (err) {
  fail('userinfo', err)
}

// A second redemption of the same code must fail with invalid_grant.
let replay
try {
  await client.authorizationCodeGrant(config, back, { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce })
  replay = 'accepted'
} catch (err) {
  replay = err.error ?? err.code ?? String(err)
}

process.stdout.write(`${JSON.stringify({
  claims,
  userinfo,
  hops,
  replay,
  token_type: tokens.token_type,
  expected_nonce: nonce,
  iss_in_response: back.searchParams.get('iss'),
})}\n`)
process.exit(0)
