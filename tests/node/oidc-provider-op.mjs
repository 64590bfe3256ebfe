// A third-party Mobile Connect operator OP for interop tests: oidc-provider (v9, by panva) with
// CIBA in poll mode, standing in for a real operator so that mcgate's `ciba` operator adapter is
// proven against an implementation it was not written with (shared/protocol.md §8).
//
// Driven by tests/operator_interop.rs, which sets:
//   CLIENT_ID      the gateway's client id at this operator (e.g. mcgate)
//   CLIENT_SECRET  its secret (client_secret_basic)
//   APPROVE_AFTER_MS  optional: how long the simulated person takes to answer (default 300)
//   STOCK_BINDING_MESSAGE  optional: when set, keep oidc-provider's own binding_message rule
//                  (1-20 characters of [a-zA-Z0-9-._+/!?#]) instead of accepting any displayable text
//
// Listens on 127.0.0.1, port 0 (plain http: loopback only), and prints on stdout:
//   LISTENING http://127.0.0.1:PORT        once, first: the issuer
//   EVENT {"event":"bc-authorize",...}     per accepted backchannel request: what the gateway sent
//   EVENT {"event":"result",...}           per outcome delivered through provider.backchannelResult
// Exits when stdin closes (the test process is gone) or on SIGTERM/SIGKILL.
//
// The person's answer is scripted by the MSISDN's last digit, as in mcgate's own simulator:
//   1, 8, 9  approve after APPROVE_AFTER_MS: acr "2", amr ["SIM_OK"]
//   2        the person denies: access_denied
//   3        the person never answers: the request expires
//   4        unknown subscriber: bc-authorize → 400 unknown_user_id
//   5        the operator breaks: bc-authorize → HTTP 500 server_error
//   6        the operator fails later: the token endpoint answers 400 transaction_failed
//   7        approve with PIN: acr "3" when acr_values asked for 3 (else "2"), amr ["SIM_PIN"]
//   0        approve (acr "2")

import Provider, { errors } from 'oidc-provider'
import { createServer } from 'node:http'
import { generateKeyPairSync, randomBytes } from 'node:crypto'

function env(name, fallback) {
  const v = process.env[name]
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback
    process.stderr.write(`oidc-provider-op.mjs: environment variable ${name} is required\n`)
    process.exit(2)
  }
  return v
}

const clientId = env('CLIENT_ID')
const clientSecret = env('CLIENT_SECRET')
const approveAfterMs = Number(env('APPROVE_AFTER_MS', '300'))
const stockBindingMessage = env('STOCK_BINDING_MESSAGE', '') !== ''

function emit(event) {
  process.stdout.write(`EVENT ${JSON.stringify(event)}\n`)
}

// Mobile Connect login hints: `MSISDN:<digits>` (no +) or `tel:+<digits>`; anything else is a
// malformed request. Returns the E.164 digits.
function msisdnOf(loginHint) {
  let m = /^MSISDN:([1-9][0-9]{4,14})$/i.exec(loginHint)
  if (!m) m = /^tel:\+([1-9][0-9]{4,14})$/i.exec(loginHint)
  if (!m) throw new errors.InvalidRequest('login_hint must be MSISDN:<digits> or tel:+<digits>')
  return m[1]
}

// Signing keys, fresh per run: RS256 (what the gateway accepts), ES256 and Ed25519 (published
// as `"alg": "Ed25519"`, which older JOSE libraries do not know), so the JWKS holds several keys
// and the gateway must pick by `kid` and tolerate the others.
function jwk(kind, options, extra) {
  const { privateKey } = generateKeyPairSync(kind, options)
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), ...extra }
}
const jwks = {
  keys: [
    jwk('rsa', { modulusLength: 2048 }, { alg: 'RS256', use: 'sig' }),
    jwk('ec', { namedCurve: 'P-256' }, { alg: 'ES256', use: 'sig' }),
    jwk('ed25519', undefined, { alg: 'Ed25519', use: 'sig' }),
  ],
}

const server = createServer()
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen(0, '127.0.0.1', resolve)
})
const issuer = `http://127.0.0.1:${server.address().port}`

let provider

// Mobile Connect allows any displayable text as binding_message (the gateway has checked it).
function acceptDisplayable(_ctx, bindingMessage) {
  if (bindingMessage === undefined) return
  if (bindingMessage.length > 64 || /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(bindingMessage)) {
    throw new errors.InvalidBindingMessage('binding_message is not displayable')
  }
}

async function deliver(request, result, extra) {
  try {
    await provider.backchannelResult(request, result, extra)
  } catch (err) {
    process.stderr.write(`oidc-provider-op.mjs: backchannelResult failed: ${err?.stack ?? err}\n`)
  }
}

async function approve(request, account, client, acr, amr) {
  const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId })
  grant.addOIDCScope(request.scope)
  await grant.save()
  emit({ event: 'result', outcome: 'approved', acr, amr })
  await deliver(request, grant, { acr, amr, authTime: Math.floor(Date.now() / 1000) })
}

provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['urn:openid:params:grant-type:ciba'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      backchannel_token_delivery_mode: 'poll',
      id_token_signed_response_alg: 'RS256',
      scope: 'openid mc_authn',
    },
  ],
  jwks,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'mc_authn'],
  acrValues: ['2', '3'],
  // `acr` only when the request asks for it (oidc-provider's default: the gateway's acr_values
  // must do that); `amr` and `auth_time` with every ID token, as Mobile Connect operators do.
  claims: { openid: ['sub', 'amr', 'auth_time'], acr: null },
  ttl: {
    BackchannelAuthenticationRequest: (ctx) => Math.min(600, Number(ctx?.oidc?.params?.requested_expiry ?? 600)),
    Grant: 600,
    AccessToken: 300,
    IdToken: 300,
  },
  // Operator subjects: the operator's own id for the person. Deliberately the MSISDN itself here,
  // so the test proves the gateway never passes the operator's `sub` through.
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  features: {
    devInteractions: { enabled: false },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      processLoginHint(_ctx, loginHint) {
        const digits = msisdnOf(loginHint)
        switch (digits.at(-1)) {
          case '4':
            return undefined // oidc-provider answers 400 unknown_user_id
          case '5':
            throw new Error('scripted operator failure') // oidc-provider answers 500 server_error
          default:
            return digits
        }
      },
      processLoginHintToken() {
        throw new errors.InvalidRequest('login_hint_token is not supported')
      },
      // Without it, oidc-provider's own default rule applies.
      ...(stockBindingMessage ? {} : { validateBindingMessage: acceptDisplayable }),
      validateRequestContext(_ctx, requestContext) {
        if (requestContext !== undefined) throw new errors.InvalidRequest('request_context is not supported')
      },
      verifyUserCode(_ctx, _account, userCode) {
        if (userCode !== undefined) throw new errors.InvalidRequest('user_code is not supported')
      },
      async triggerAuthenticationDevice(ctx, request, account, client) {
        const p = ctx.oidc.params
        emit({
          event: 'bc-authorize',
          auth_req_id_length: ctx.body?.auth_req_id?.length ?? 0,
          login_hint: p.login_hint,
          scope: p.scope,
          acr_values: p.acr_values,
          binding_message: p.binding_message,
          requested_expiry: p.requested_expiry,
          expires_in: ctx.body?.expires_in,
        })
        const asked = (p.acr_values ?? '').split(' ')
        const later = (fn) => setTimeout(fn, approveAfterMs).unref()
        switch (account.accountId.at(-1)) {
          case '2':
            later(() => {
              emit({ event: 'result', outcome: 'denied' })
              deliver(request, new errors.AccessDenied('the person refused the request'))
            })
            break
          case '3':
            emit({ event: 'result', outcome: 'never' })
            break
          case '6':
            later(() => {
              emit({ event: 'result', outcome: 'failed' })
              deliver(request, new errors.CustomOIDCProviderError('transaction_failed', 'the authentication device failed'))
            })
            break
          case '7':
            later(() => approve(request, account, client, asked.includes('3') ? '3' : '2', ['SIM_PIN']))
            break
          default:
            later(() => approve(request, account, client, '2', ['SIM_OK']))
        }
      },
    },
  },
})

for (const ev of ['server_error', 'backchannel_authentication.error', 'grant.error']) {
  provider.on(ev, (_ctx, err) => {
    process.stderr.write(`oidc-provider-op.mjs: ${ev}: ${err?.error ?? ''} ${err?.error_description ?? err?.message ?? err}\n`)
  })
}

server.on('request', provider.callback())
process.stdout.write(`LISTENING ${issuer}\n`)

process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
process.on('SIGTERM', () => process.exit(0))
