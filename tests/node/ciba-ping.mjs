// Interop check: openid-client (v6) runs a CIBA ping-mode flow against mcgate.
//
// Driven by tests/openid_client.rs, which starts the demo gateway with a ping client whose
// backchannel_client_notification_endpoint is http://127.0.0.1:NOTIFY_PORT/ping, and sets:
//   ISSUER               the gateway's issuer (https://127.0.0.1:PORT)
//   CLIENT_ID            a ping client registered for client_secret_basic
//   CLIENT_SECRET        its secret
//   NOTIFY_PORT          the loopback port this script serves the notification endpoint on
//   LOGIN_HINT           e.g. MSISDN:34700000011
//   WAIT_TIMEOUT_S       optional bound on waiting for the ping and on the poll (default 30)
//   NODE_EXTRA_CA_CERTS  the gateway's self-signed certificate (TLS is verified, never disabled)
//
// The script serves POST /ping on 127.0.0.1:NOTIFY_PORT (other paths, methods or bearers: 404 /
// 401, and counted), starts the authentication with a fresh client_notification_token, waits for
// the ping (Bearer <that token>, body {"auth_req_id": <ours>}), then collects the tokens with
// openid-client's pollBackchannelAuthenticationGrant, which validates the ID token (signature via
// jwks_uri too).
// Success: prints ONE line of JSON on stdout and exits 0:
//   {"claims": {...}, "token_type": "bearer", "pings": 1, "rejected": 0, "ping_body": {...}}
// Anything unexpected: prints the error on stderr and exits 1.

import * as client from 'openid-client'
import { createServer } from 'node:http'
import { randomBytes } from 'node:crypto'
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
  process.stderr.write(`ciba-ping.mjs: unexpected failure during ${stage}:\n`)
  process.stderr.write(`${inspect(err, { depth: 6, breakLength: 120 })}\n`)
  process.exit(1)
}

const issuer = env('ISSUER')
const clientId = env('CLIENT_ID')
const clientSecret = env('CLIENT_SECRET')
const notifyPort = Number(env('NOTIFY_PORT'))
const loginHint = env('LOGIN_HINT')
const waitTimeoutS = Number(env('WAIT_TIMEOUT_S', '30'))
const notificationToken = randomBytes(32).toString('base64url')

// The RP's notification endpoint.
let pings = []
let rejected = 0
let onPing
const pinged = new Promise((resolve) => { onPing = resolve })
const server = createServer((req, res) => {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (chunk) => { if (body.length < 65536) body += chunk })
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/ping') {
      rejected += 1
      res.writeHead(404).end()
      return
    }
    if (req.headers.authorization !== `Bearer ${notificationToken}`) {
      rejected += 1
      res.writeHead(401).end()
      return
    }
    let parsed
    try { parsed = JSON.parse(body) } catch { parsed = { unparsable: body } }
    pings.push(parsed)
    res.writeHead(204).end()
    onPing(parsed)
  })
})
try {
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(notifyPort, '127.0.0.1', resolve)
  })
} catch (err) {
  fail('listening for the ping', err)
}

let config
try {
  config = await client.discovery(
    new URL(issuer), clientId, { client_secret: clientSecret }, client.ClientSecretBasic(clientSecret), { timeout: 15 })
  client.enableNonRepudiationChecks(config)
} catch (err) {
  fail('discovery', err)
}

let ack
try {
  ack = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid mc_authn',
    login_hint: loginHint,
    client_notification_token: notificationToken,
  })
} catch (err) {
  fail('backchannel authentication request', err)
}

let ping
try {
  ping = await Promise.race([
    pinged,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`no ping within ${waitTimeoutS} s`)), waitTimeoutS * 1000)),
  ])
} catch (err) {
  fail('waiting for the ping', err)
}
if (ping.auth_req_id !== ack.auth_req_id) {
  fail('ping', new Error(`ping names ${JSON.stringify(ping)}, expected auth_req_id ${ack.auth_req_id}`))
}

let tokens
try {
  tokens = await client.pollBackchannelAuthenticationGrant(config, ack, undefined, {
    signal: AbortSignal.timeout(waitTimeoutS * 1000),
  })
} catch (err) {
  fail('token request after the ping', err)
}
const claims = tokens.claims()
if (claims === undefined) {
  fail('token response', new Error(`no id_token in the token response: ${JSON.stringify(tokens)}`))
}
server.close()
process.stdout.write(`${JSON.stringify({ claims, token_type: tokens.token_type, pings: pings.length, rejected, ping_body: ping })}\n`)
process.exit(0)
